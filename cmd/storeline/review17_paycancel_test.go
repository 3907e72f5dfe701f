package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCtlPayCancel drives `storeline ctl --central pay-cancel` against a
// `storeline central` started in the test: a payment booked by mistake is
// cancelled (its postings reversed, the statement back where it was),
// the same command again answers the same, another reason is refused as
// cancelled already, and a payment that does not exist is a 404 naming
// id.
func TestCtlPayCancel(t *testing.T) {
	dir := t.TempDir()
	api, key, stop := runCentral(t, filepath.Join(dir, "c"))
	defer stop()
	e := env(map[string]string{"STORELINE_CENTRAL_KEY": key})
	c := &adminClient{base: api, token: key, timeout: 10 * time.Second}
	for _, args := range [][]string{
		{"PUT", "/v1/suppliers/p1", `{"name":"Dairy"}`},
		{"PUT", "/v1/banks/b1", `{"name":"First Bank"}`},
	} {
		if err := c.do(context.Background(), args[0], args[1], []byte(args[2]), &syncBuffer{}); err != nil {
			t.Fatalf("%s %s: %v", args[0], args[1], err)
		}
	}
	// Cancels need the cluster's FSM level 3, raised shortly after the
	// node leads: wait until the command gets past the 503.
	waitFor(t, "the cluster at the level of cancels", 20*time.Second, func() bool {
		_, stdout, stderr := runCmd(t, e, "ctl", "--central", api, "pay-cancel", "nosuch", "typo")
		return strings.Contains(stdout+stderr, "(field: id)")
	})
	today := time.Now().UTC().Format(time.DateOnly)
	steps := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"pay-supplier", "pay1", "p1", "b1", "5.00", "EUR", today}, 0, `"status":"booked"`},
		{[]string{"statement", "p1", "EUR", today, today}, 0, `"closing":"-5.00"`},
		{[]string{"pay-cancel", "pay1", "wrong supplier"}, 0, `"status":"cancelled"`},
		{[]string{"pay-cancel", "pay1", "wrong supplier"}, 0, `"reason":"wrong supplier"`},
		{[]string{"pay-cancel", "pay1", "wrong amount"}, 1, `(field: status)`},
		{[]string{"pay-cancel", "pay1", ""}, 1, `(field: reason)`},
		{[]string{"pay-cancel", "pay1"}, 2, `bad command`},
		{[]string{"pay-supplier", "pay2", "p1", "b1", "5.00", "EUR", today}, 0, `"status":"booked"`},
		{[]string{"pay-cancel", "pay2", "typo", today}, 0, `"cancelled_on":"` + today + `"`},
		{[]string{"pay-cancel", "pay2", "typo", today}, 0, `"status":"cancelled"`},
		{[]string{"show-payment-not-a-command"}, 2, `bad command`},
		{[]string{"statement", "p1", "EUR", today, today}, 0, `"closing":"0.00"`},
		{[]string{"statement", "p1", "EUR", today, today}, 0, `"type":"payment_cancel"`},
	}
	for _, s := range steps {
		code, stdout, stderr := runCmd(t, e, append([]string{"ctl", "--central", api}, s.args...)...)
		if code != s.code || !strings.Contains(stdout+stderr, s.want) {
			t.Fatalf("ctl %v = %d, want %d with %s\nstdout: %s\nstderr: %s", s.args, code, s.code, s.want, stdout, stderr)
		}
	}
	// ctl's -central flag points to "ctl --central URL help": the usage,
	// exit 0.
	if code, stdout, stderr := runCmd(t, e, "ctl", "--central", api, "help"); code != 0 || !strings.Contains(stdout, "pay-cancel ID REASON") {
		t.Fatalf("ctl --central URL help: exit %d, stdout %s, stderr %s; want the usage listing pay-cancel, exit 0", code, stdout, stderr)
	}
}
