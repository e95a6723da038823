package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netns"
)

// TestEgress boots a Debian VM under `--egress allow` against a simulated
// outside world (a network namespace with its own DNS server and HTTP and
// HTTPS servers whose certificates a CA made by the test signs; the
// daemon's resolv.conf points at that DNS server, so the egress proxy
// resolves names there) and tries to get past the allowlist.
func TestEgress(t *testing.T) {
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	d := newHostileNetDaemon(t, "BANGER_RESOLV_CONF="+resolv)
	defer cleanupNet(d)
	w := newEgressWorld(t, d.subnet)
	if err := os.WriteFile(resolv, []byte("nameserver "+w.dns.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d.must(t, "kernel", "pull", "debian-12-cloud")
	img := debianImage(t, d)

	// Bad input: a clear one-line error, nothing made.
	for _, args := range [][]string{
		{"--egress", "sometimes"}, {"--allow", "good.test"}, {"--egress", "open", "--allow", "good.test"},
		{"--egress", "allow", "--allow", "2001:db8::/32"}, {"--egress", "allow", "--allow", "good.test:99999"},
		{"--egress", "none", "--nat"}, {"--egress", "allow", "--deny", "good.test"},
	} {
		o, e, code := d.run(append([]string{"vm", "create", "--name", "bad", "--image", img}, args...)...)
		msg := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(e), "Run 'banger --help' for usage."))
		if code == 0 || msg == "" || strings.Contains(msg, "\n") {
			t.Errorf("vm create %v: exit %d, want one error line\n%s%s", args, code, o, e)
		}
	}
	if _, _, code := d.run("vm", "show", "bad"); code == 0 {
		t.Error("a refused create left a VM behind")
	}

	allow := fmt.Sprintf("good.test,private.test,svc.test:%d,%s:%d", egressRawPort, w.raw, egressRawPort)
	d.must(t, "vm", "create", "--name", "eg", "--image", img, "--memory", "512", "--vcpus", "2",
		"--egress", "allow", "--allow", allow)
	guest := func(script string) (string, int) {
		o, e, code := d.run("vm", "exec", "eg", "--", "bash", "-c", script)
		return o + e, code
	}
	pushed, code := guest("cat > /tmp/ca.pem <<'EOF'\n" + w.caPEM + "EOF\n")
	if code != 0 {
		t.Fatalf("copy the test CA into the guest: %s", pushed)
	}
	curl := func(url string, extra ...string) (string, int) {
		return guest(fmt.Sprintf("curl -sS --max-time 10 --cacert /tmp/ca.pem %s %s", strings.Join(extra, " "), url))
	}

	// The allowed name, over HTTP and HTTPS (the guest checks the real
	// server's certificate: the proxy splices, it does not terminate).
	if o, code := curl("http://good.test/"); code != 0 || !strings.Contains(o, "world good") {
		t.Errorf("http://good.test/: exit %d %q", code, o)
	}
	if o, code := curl("https://good.test/"); code != 0 || !strings.Contains(o, "world good tls") {
		t.Errorf("https://good.test/: exit %d %q", code, o)
	}

	// A denied name fails at DNS, and at the proxy when the guest knows
	// its address anyway.
	if o, code := guest("getent ahostsv4 bad.test"); code == 0 {
		t.Errorf("bad.test resolved: %s", o)
	}
	for _, url := range []string{"http://bad.test/", "https://bad.test/"} {
		if o, code := curl(url, "--resolve", "bad.test:80:"+w.bad.String(), "--resolve", "bad.test:443:"+w.bad.String()); code == 0 || strings.Contains(o, "world bad") {
			t.Errorf("%s with the address given: exit %d %q", url, code, o)
		}
	}
	// /etc/hosts pointing the allowed name at the denied address: the
	// proxy dials the name as the host resolves it.
	if o, code := guest(fmt.Sprintf("echo '%s good.test' >> /etc/hosts && getent hosts good.test", w.bad)); code != 0 || !strings.Contains(o, w.bad.String()) {
		t.Fatalf("guest /etc/hosts: %s", o)
	}
	for _, url := range []string{"http://good.test/", "https://good.test/"} {
		o, code := curl(url)
		if strings.Contains(o, "world bad") {
			t.Errorf("%s with good.test pointed at the denied address in /etc/hosts reached it: %q", url, o)
		} else if code != 0 || !strings.Contains(o, "world good") {
			t.Errorf("%s with good.test pointed elsewhere in /etc/hosts: exit %d %q, want the real good.test", url, code, o)
		}
	}
	guest("sed -i '/good.test/d' /etc/hosts")
	// An allowed name resolving to a private address is refused.
	if o, code := curl("http://private.test/"); code == 0 || strings.Contains(o, "world") {
		t.Errorf("http://private.test/ (a private address): exit 0 %q", o)
	}
	// Other TCP: only to the network rule and to learned names' ports.
	tcp := func(addr netip.Addr) bool {
		o, code := guest(fmt.Sprintf("timeout 5 bash -c 'cat < /dev/tcp/%s/%d'", addr, egressRawPort))
		return code == 0 && strings.Contains(o, "raw hello")
	}
	if !tcp(w.raw) {
		t.Errorf("TCP to %s:%d (allowed by a network rule) failed", w.raw, egressRawPort)
	}
	if tcp(w.bad) {
		t.Errorf("TCP to %s:%d (not allowed) got through", w.bad, egressRawPort)
	}
	if tcp(w.svc) {
		t.Errorf("TCP to svc.test's address before the guest resolved it got through")
	}
	if o, code := guest("getent ahostsv4 svc.test"); code != 0 || !strings.Contains(o, w.svc.String()) {
		t.Errorf("svc.test: %s", o)
	}
	if !tcp(w.svc) {
		t.Errorf("TCP to svc.test:%d after resolving it failed", egressRawPort)
	}
	// UDP beyond DNS to the gateway is dropped (no QUIC).
	before := w.udpSeen.Load()
	guest(fmt.Sprintf("for i in 1 2 3; do echo quic > /dev/udp/%s/443; done; sleep 1", w.good))
	if w.udpSeen.Load() != before {
		t.Errorf("UDP 443 from the guest reached the outside")
	}

	// vm egress shows the policy and the denials.
	var eg struct {
		Policy struct {
			Mode  string   `json:"mode"`
			Allow []string `json:"allow"`
		} `json:"policy"`
		Denials []struct {
			Via, Name, Destination, Reason string
		} `json:"denials"`
	}
	d.mustJSON(t, &eg, "vm", "egress", "eg")
	t.Logf("denials: %+v", eg.Denials)
	seen := map[string]bool{}
	for _, dn := range eg.Denials {
		seen[dn.Via+" "+dn.Name] = true
		if dn.Name == "private.test" && !strings.Contains(dn.Reason, "private") {
			t.Errorf("private.test denial: %+v", dn)
		}
	}
	if eg.Policy.Mode != "allow" || len(eg.Policy.Allow) != 4 || !seen["dns bad.test"] || !seen["proxy bad.test"] || !seen["proxy private.test"] {
		t.Errorf("vm egress: %+v", eg)
	}
	if o := d.must(t, "vm", "egress", "eg"); !strings.Contains(o, "bad.test") || !strings.Contains(o, "allow") {
		t.Errorf("vm egress text:\n%s", o)
	}

	// Policy changes apply at once to the running VM.
	d.must(t, "vm", "set", "eg", "--egress", "allow", "--allow", "good.test,bad.test")
	if o, code := curl("http://bad.test/"); code != 0 || !strings.Contains(o, "world bad") {
		t.Errorf("bad.test after allowing it: exit %d %q", code, o)
	}
	if tcp(w.raw) {
		t.Errorf("TCP to %s after its rule was removed got through", w.raw)
	}
	d.must(t, "vm", "set", "eg", "--egress", "none")
	if o, code := curl("http://good.test/", "--resolve", "good.test:80:"+w.good.String()); code == 0 {
		t.Errorf("good.test under --egress none: %q", o)
	}
	d.must(t, "vm", "set", "eg", "--nat")
	if !tcp(w.bad) {
		t.Errorf("--nat (open) did not reach the outside")
	}
	var rec struct {
		NAT    bool `json:"nat_enabled"`
		Egress struct {
			Mode string `json:"mode"`
		} `json:"egress"`
	}
	d.mustJSON(t, &rec, "vm", "show", "eg")
	if !rec.NAT || rec.Egress.Mode != "open" {
		t.Errorf("after --nat: %+v, want NAT and egress open", rec)
	}
}

// egressRawPort is the plain TCP port of the simulated world.
const egressRawPort = 2222

// egressWorld is the outside: a namespace joined to the host by a veth,
// with service addresses on its loopback routed through it.
type egressWorld struct {
	ns, hostIf          string
	dns                 netip.Addr // the world's resolver
	good, bad, raw, svc netip.Addr
	private             netip.Addr
	caPEM               string
	ca                  *x509.Certificate
	caKey               *ecdsa.PrivateKey
	udpSeen             atomic.Int64

	mu    sync.Mutex
	names map[string]netip.Addr // what the world's DNS answers (FQDN, lower case)
}

// addName makes the world's DNS answer name with addr.
func (w *egressWorld) addName(name string, addr netip.Addr) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.names[strings.ToLower(name)+"."] = addr
}

// lookup is the world's DNS table.
func (w *egressWorld) lookup(fqdn string) (netip.Addr, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	a, ok := w.names[strings.ToLower(fqdn)]
	return a, ok
}

func newEgressWorld(t testing.TB, vmSubnet string) *egressWorld {
	t.Helper()
	n := os.Getpid() % 10000
	third := byte(os.Getpid() % 250)
	a := func(last byte) netip.Addr { return netip.AddrFrom4([4]byte{198, 19, third, last}) }
	w := &egressWorld{ns: fmt.Sprintf("beg%d", n), hostIf: fmt.Sprintf("begv%d", n), dns: a(2),
		good: a(17), bad: a(18), raw: a(19), svc: a(20), private: netip.MustParseAddr("10.123.0.1")}
	peer := w.hostIf + "p"
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", w.hostIf).Run()
		exec.Command("ip", "netns", "del", w.ns).Run()
	})
	cmds := [][]string{
		{"netns", "add", w.ns},
		{"link", "add", w.hostIf, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "netns", w.ns},
		{"addr", "add", a(1).String() + "/30", "dev", w.hostIf},
		{"link", "set", w.hostIf, "up"},
		{"route", "add", a(16).String() + "/28", "via", a(2).String()},
		{"-n", w.ns, "addr", "add", a(2).String() + "/30", "dev", peer},
		{"-n", w.ns, "link", "set", peer, "up"},
		{"-n", w.ns, "link", "set", "lo", "up"},
		{"-n", w.ns, "route", "add", vmSubnet, "via", a(1).String()},
	}
	for _, s := range []netip.Addr{w.good, w.bad, w.raw, w.svc} {
		cmds = append(cmds, []string{"-n", w.ns, "addr", "add", s.String() + "/32", "dev", "lo"})
	}
	for _, c := range cmds {
		// The route to the service addresses needs the veth up first.
		ipCmd(t, c...)
	}
	ca, caKey := egressCA(t)
	w.ca, w.caKey = ca, caKey
	w.caPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}))
	w.names = map[string]netip.Addr{}
	for name, addr := range map[string]netip.Addr{"good.test": w.good, "bad.test": w.bad, "svc.test": w.svc, "private.test": w.private} {
		w.addName(name, addr)
	}
	w.serveDNS(t)
	for _, s := range []struct {
		addr netip.Addr
		name string
	}{{w.good, "good"}, {w.bad, "bad"}, {w.private, "private"}} {
		if s.addr == w.private {
			continue // never reachable: refused before any dial
		}
		w.serveHTTP(t, s.addr, 80, nil, "world "+s.name)
		cert := egressLeaf(t, ca, caKey, s.name+".test")
		w.serveHTTP(t, s.addr, 443, &tls.Config{Certificates: []tls.Certificate{cert}}, "world "+s.name+" tls")
	}
	for _, s := range []netip.Addr{w.raw, w.bad, w.svc} {
		l := w.listen(t, "tcp", netip.AddrPortFrom(s, egressRawPort)).(net.Listener)
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				fmt.Fprintln(c, "raw hello")
				c.Close()
			}
		}()
	}
	pc := w.listen(t, "udp", netip.AddrPortFrom(w.good, 443)).(net.PacketConn)
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			w.udpSeen.Add(1)
		}
	}()
	return w
}

// listen opens a TCP listener or UDP socket inside the world's namespace.
func (w *egressWorld) listen(t testing.TB, network string, ap netip.AddrPort) any {
	t.Helper()
	type result struct {
		v   any
		err error
	}
	ch := make(chan result)
	go func() {
		runtime.LockOSThread() // dropped with the goroutine; the socket stays in the namespace
		h, err := netns.GetFromName(w.ns)
		if err == nil {
			err = netns.Set(h)
			h.Close()
		}
		if err != nil {
			ch <- result{nil, err}
			return
		}
		if network == "udp" {
			pc, err := net.ListenPacket("udp4", ap.String())
			ch <- result{pc, err}
			return
		}
		l, err := net.Listen("tcp4", ap.String())
		ch <- result{l, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("listen %s %s in %s: %v", network, ap, w.ns, r.err)
	}
	t.Cleanup(func() { r.v.(interface{ Close() error }).Close() })
	return r.v
}

func (w *egressWorld) serveHTTP(t testing.TB, addr netip.Addr, port uint16, cfg *tls.Config, body string) {
	t.Helper()
	l := w.listen(t, "tcp", netip.AddrPortFrom(addr, port)).(net.Listener)
	if cfg != nil {
		l = tls.NewListener(l, cfg)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(rw, body)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// serveDNS answers A queries in the world from its names (good, bad, svc
// and private.test, and any added later).
func (w *egressWorld) serveDNS(t testing.TB) {
	t.Helper()
	h := dns.HandlerFunc(func(rw dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, question := range q.Question {
			a, ok := w.lookup(question.Name)
			if !ok {
				m.Rcode = dns.RcodeNameError
				continue
			}
			if question.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
					A:   a.AsSlice(),
				})
			}
		}
		_ = rw.WriteMsg(m)
	})
	pc := w.listen(t, "udp", netip.AddrPortFrom(w.dns, 53)).(net.PacketConn)
	l := w.listen(t, "tcp", netip.AddrPortFrom(w.dns, 53)).(net.Listener)
	udp := &dns.Server{PacketConn: pc, Handler: h}
	tcp := &dns.Server{Listener: l, Handler: h}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	t.Cleanup(func() { udp.Shutdown(); tcp.Shutdown() })
}

func egressCA(t testing.TB) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "banger egress test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca, key
}

func egressLeaf(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		DNSNames: []string{name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
