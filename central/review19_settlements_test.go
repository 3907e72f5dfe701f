package central_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestReview19IdempotencyKeyCountsCharacters: openapi.yaml bounds
// Idempotency-Key with maxLength 128, which counts characters, and the
// refusal says "at most 128 characters"; the bound counted bytes, so a
// key of 100 Cyrillic letters (200 bytes), valid by the spec, was
// refused.
func TestReview19IdempotencyKeyCountsCharacters(t *testing.T) {
	c := startCluster(t, 1)
	a := c.waitLeader().APIAddr()
	for _, tc := range []struct {
		key  string
		want int
	}{
		{strings.Repeat("ж", 100), http.StatusOK},
		{strings.Repeat("ж", 128), http.StatusOK},
		{strings.Repeat("k", 128), http.StatusOK},
		{strings.Repeat("ж", 129), http.StatusBadRequest},
		{strings.Repeat("k", 129), http.StatusBadRequest},
	} {
		r := apiDo(t, "PUT", a, "/v1/banks/b1", adminKey, map[string]any{"name": "First Bank"},
			map[string]string{"Idempotency-Key": tc.key})
		if r.status/100 != tc.want/100 {
			t.Errorf("a key of %d characters (%d bytes): %d %s, want %d", len([]rune(tc.key)), len(tc.key), r.status, r.body, tc.want)
			continue
		}
		if tc.want == http.StatusBadRequest && !strings.Contains(string(r.body), `"field":"Idempotency-Key"`) {
			t.Errorf("a key of %d characters: %s, want a problem naming Idempotency-Key", len([]rune(tc.key)), r.body)
		}
	}
}
