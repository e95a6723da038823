package cli

import "testing"

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
