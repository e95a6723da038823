package dns

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"

	mdns "github.com/miekg/dns"
)

// gate allows names ending in .allowed.test to every client it governs.
type gate struct {
	mu       sync.Mutex
	answered []string
	refused  []string
}

func (g *gate) Governs(netip.Addr) bool { return true }
func (g *gate) AllowsName(_ netip.Addr, name string) bool {
	return strings.HasSuffix(name, ".allowed.test.")
}
func (g *gate) Answered(_ netip.Addr, name string, m *mdns.Msg) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.answered = append(g.answered, name)
}
func (g *gate) Refused(_ netip.Addr, name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refused = append(g.refused, name)
}

func TestEgressGateDecidesBeforeForward(t *testing.T) {
	up, seen := fakeUpstream(t)
	g := &gate{}
	srv, err := ListenAny(Config{
		Addr: netip.MustParseAddr("127.0.0.1"), Allowed: netip.MustParsePrefix("127.0.0.0/8"), Domain: "vm",
		Lookup:    func(string) (netip.Addr, bool) { return netip.Addr{}, false },
		Upstreams: func() []string { return []string{up} },
		Forward:   forwardAll, // the gate wins over it
		Egress:    g,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx)
	if got := answerA(t, query(t, "udp", srv.Addr(), "www.allowed.test.", mdns.TypeA)); got != "192.0.2.77" {
		t.Errorf("allowed name: %s", got)
	}
	if got := <-seen; got != "udp www.allowed.test." {
		t.Errorf("upstream saw %q", got)
	}
	for _, name := range []string{"tunnel.evil.test.", "allowed.test.evil.test.", "www.allowed.test.x."} {
		if r := query(t, "udp", srv.Addr(), name, mdns.TypeTXT); r.Rcode != mdns.RcodeRefused {
			t.Errorf("%s: rcode %s, want REFUSED", name, mdns.RcodeToString[r.Rcode])
		}
	}
	select {
	case got := <-seen:
		t.Errorf("a refused name went upstream: %q", got)
	default:
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.answered) != 1 || len(g.refused) != 3 {
		t.Errorf("answered %v refused %v", g.answered, g.refused)
	}
}
