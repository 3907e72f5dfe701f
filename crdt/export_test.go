package crdt

import "fmt"

// CheckDerived recomputes the derived fields of a BoundedCounter, an LWWMap
// or a SerialCounts from its cells and reports the first that disagrees.
// Tests call it after every step.
func CheckDerived(v any) error {
	switch v := v.(type) {
	case *BoundedCounter:
		var inc, dec int64
		in := map[string]int64{}
		for o, r := range v.rows {
			if r.inc == 0 && r.dec == 0 && len(r.out) == 0 {
				return fmt.Errorf("empty row %q", o)
			}
			inc += r.inc
			dec += r.dec
			var out int64
			for to, x := range r.out {
				if x <= 0 || to == o {
					return fmt.Errorf("bad transfer cell %q->%q = %d", o, to, x)
				}
				out += x
				in[to] += x
			}
			if out != r.outSum {
				return fmt.Errorf("outSum(%q) = %d, want %d", o, r.outSum, out)
			}
		}
		if inc != v.incSum || dec != v.decSum {
			return fmt.Errorf("incSum, decSum = %d, %d, want %d, %d", v.incSum, v.decSum, inc, dec)
		}
		for o := range v.in {
			if v.in[o] != in[o] {
				return fmt.Errorf("in(%q) = %d, want %d", o, v.in[o], in[o])
			}
		}
		for o := range in {
			if v.in[o] != in[o] {
				return fmt.Errorf("in(%q) = %d, want %d", o, v.in[o], in[o])
			}
		}
	case *LWWMap:
		live := 0
		for k, r := range v.entries {
			switch {
			case r.state == regLive:
				live++
			case r.state == regUnset:
				return fmt.Errorf("unset entry %q", k)
			case r.stamp.Time < v.horizon:
				return fmt.Errorf("tombstone %q at %s below horizon %s", k, r.stamp, v.horizon)
			}
		}
		if live != v.live {
			return fmt.Errorf("live = %d, want %d", v.live, live)
		}
	case *SerialCounts:
		for s, e := range v.serials {
			var net int64
			for _, r := range e.rows {
				net += r.sold - r.returned
			}
			if net != e.net {
				return fmt.Errorf("net(%q) = %d, want %d", s, e.net, net)
			}
		}
	default:
		return fmt.Errorf("CheckDerived: unsupported %T", v)
	}
	return nil
}
