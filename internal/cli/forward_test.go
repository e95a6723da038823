package cli

import (
	"regexp"
	"strings"
	"testing"

	"banger/internal/api"
	"banger/internal/model"
)

func TestParseForwardSpec(t *testing.T) {
	for _, c := range []struct {
		in          string
		addr        string
		host, guest int
		bad         bool
	}{
		{in: "3000", host: 3000, guest: 3000},
		{in: "8080:80", host: 8080, guest: 80},
		{in: "127.0.0.1:8080:80", addr: "127.0.0.1", host: 8080, guest: 80},
		{in: "[::1]:8080:80", addr: "::1", host: 8080, guest: 80},
		{in: "::1:8080:80", addr: "::1", host: 8080, guest: 80},
		{in: "x", bad: true},
		{in: "8080:", bad: true},
		{in: ":8080:80", bad: true},
		{in: "a:b", bad: true},
	} {
		addr, host, guest, err := parseForwardSpec(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("%q accepted", c.in)
			}
			continue
		}
		if err != nil || addr != c.addr || host != c.host || guest != c.guest {
			t.Errorf("%q: %q %d %d %v", c.in, addr, host, guest, err)
		}
	}
}

// vm list's PORTS shows what carries traffic; vm show lists every forward
// and says why one does not.
func TestForwardsInListAndShow(t *testing.T) {
	fs := []api.VMForward{
		{HostAddrs: []string{"127.0.0.1", "::1"}, HostPort: 8080, GuestPort: 80},
		{UnixPath: "/tmp/pg.sock", GuestPort: 5432},
		{HostPort: 3000, GuestPort: 3000, Auto: true},
		{HostPort: 5000, GuestPort: 5000, Auto: true, Conflict: "host port 5000 is held by a host process"},
	}
	if got, want := portsColumn(fs), "8080->80,unix:/tmp/pg.sock->5432,3000->3000"; got != want {
		t.Errorf("PORTS %q, want %q", got, want)
	}
	if got := portsColumn(nil); got != "-" {
		t.Errorf("PORTS without forwards %q, want -", got)
	}
	many := []api.VMForward{}
	for p := 8000; p < 8006; p++ {
		many = append(many, api.VMForward{HostPort: p, GuestPort: p, Auto: true})
	}
	if got, want := portsColumn(many), "8000->8000,8001->8001,8002->8002,8003->8003,+2 more"; got != want {
		t.Errorf("PORTS of six forwards %q, want %q", got, want)
	}
	want := "8080->80, unix:/tmp/pg.sock->5432, 3000->3000 (auto), 5000->5000 (auto; not forwarded: host port 5000 is held by a host process)"
	if got := forwardsLine(fs); got != want {
		t.Errorf("forwards line\n%q, want\n%q", got, want)
	}
	var b strings.Builder
	if err := vmText(&b, model.VMRecord{Name: "v", Forwards: fs[:1]}); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^forwards:\s+8080->80$`).MatchString(b.String()) {
		t.Errorf("vm show:\n%s", b.String())
	}
	b.Reset()
	vmText(&b, model.VMRecord{Name: "v"})
	if strings.Contains(b.String(), "forwards") {
		t.Errorf("vm show of a VM without forwards has a forwards line:\n%s", b.String())
	}
}
