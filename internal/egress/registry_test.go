package egress

import (
	"net/netip"
	"testing"
	"time"
)

// A guest's denials are all recorded, but only LoggedDenials per window are
// worth a log line; the next window's first line says how many were not.
func TestDenyLogBudget(t *testing.T) {
	r := NewRegistry()
	ip := netip.MustParseAddr("10.0.0.2")
	r.Set("vm1", ip, Policy{})
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	logged := 0
	for i := range LoggedDenials + 30 {
		if log, dropped := r.Deny(ip, Denial{Time: t0.Add(time.Duration(i) * time.Millisecond), Via: "dns", Name: "x.test"}); log {
			logged++
			if dropped != 0 {
				t.Fatalf("denial %d: dropped %d in the first window", i, dropped)
			}
		}
	}
	if logged != LoggedDenials {
		t.Fatalf("logged %d of %d denials in one window, want %d", logged, LoggedDenials+30, LoggedDenials)
	}
	if n := len(r.Denials("vm1")); n != LoggedDenials+30 {
		t.Fatalf("recorded %d denials, want all %d", n, LoggedDenials+30)
	}
	log, dropped := r.Deny(ip, Denial{Time: t0.Add(DenialLogWindow + time.Second), Via: "dns", Name: "x.test"})
	if !log || dropped != 30 {
		t.Fatalf("first denial of the next window: log %v dropped %d, want true 30", log, dropped)
	}
	// Another VM has its own budget; an unknown address is not recorded.
	other := netip.MustParseAddr("10.0.0.3")
	r.Set("vm2", other, Policy{})
	if log, _ := r.Deny(other, Denial{Time: t0, Via: "dns"}); !log {
		t.Fatal("a second VM's first denial was not logged")
	}
	if log, _ := r.Deny(netip.MustParseAddr("10.0.0.9"), Denial{Via: "dns"}); log {
		t.Fatal("a denial for an unknown address was logged")
	}
}
