package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/cgi"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSecrets binds two secrets to a Debian VM under the egress proxy,
// against the simulated outside world of TestEgress plus servers that
// record what they receive: the real value must reach only the hosts the
// secrets are bound to, and nothing in the guest (environment, /proc,
// disks, memory) nor in banger's state and logs may hold it in the clear.
func TestSecrets(t *testing.T) {
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	roots := filepath.Join(t.TempDir(), "roots.pem")
	for _, f := range []string{resolv, roots} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The daemon verifies the bound hosts' certificates against the
	// world's CA (Go reads SSL_CERT_FILE for the system roots).
	d := newHostileNetDaemon(t, "BANGER_RESOLV_CONF="+resolv, "SSL_CERT_FILE="+roots)
	defer cleanupNet(d)
	w := newEgressWorld(t, d.subnet)
	if err := os.WriteFile(resolv, []byte("nameserver "+w.dns.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(roots, []byte(w.caPEM), 0o644); err != nil {
		t.Fatal(err)
	}
	d.stop() // the system roots are read once: start again with the file filled
	d.start(t)
	apiValue := "sk-test-" + randHex(t, 20)
	gitValue := "ghp_" + randHex(t, 18)
	s := newSecretsWorld(t, w, "x-access-token", gitValue)
	d.mustStdin(t, apiValue, "secret", "add", "api", "--host", "api.test")
	d.mustStdin(t, gitValue+"\n", "secret", "add", "gitpw", "--host", "git.test", "--basic", "x-access-token")
	d.must(t, "kernel", "pull", "debian-12-cloud")
	img := debianImage(t, d)

	// Bad input: one line, nothing made.
	for _, c := range []struct {
		stdin string
		args  []string
	}{
		{"", []string{"secret", "add", "empty", "--host", "api.test"}},
		{"v", []string{"secret", "add", "nohost"}},
		{"v", []string{"secret", "add", "api", "--host", "api.test"}},
		{"v", []string{"secret", "add", "badhost", "--host", "not a host"}},
		{"v", []string{"secret", "add", "badhdr", "--host", "api.test", "--header", "Authorization: Bearer"}},
		{"", []string{"vm", "create", "--name", "bad", "--image", img, "--secret", "nosuch"}},
		{"", []string{"vm", "create", "--name", "bad", "--image", img, "--egress", "open", "--secret", "api"}},
	} {
		o, e, code := d.runStdin(c.stdin, c.args...)
		msg := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(e), "Run 'banger --help' for usage."))
		if code == 0 || msg == "" || strings.Contains(msg, "\n") {
			t.Errorf("banger %v: exit %d, want one error line\n%s%s", c.args, code, o, e)
		}
	}
	if _, _, code := d.run("vm", "show", "bad"); code == 0 {
		t.Error("a refused create left a VM behind")
	}
	if o := d.must(t, "--json", "secret", "list") + d.must(t, "secret", "show", "api"); strings.Contains(o, apiValue) || !strings.Contains(o, "api.test") {
		t.Errorf("secret list/show printed the value or not the host:\n%s", o)
	}

	d.must(t, "vm", "create", "--name", "sec", "--image", img, "--memory", "512", "--vcpus", "2",
		"--egress", "allow", "--allow", "other.test", "--secret", "api=API_TOKEN", "--secret", "gitpw=GIT_TOKEN")
	guest := func(vm, script string) (string, int) {
		o, e, code := d.run("vm", "exec", vm, "--", "bash", "-c", script)
		return o + e, code
	}
	placeholder := func(vm, env string) string {
		o, code := guest(vm, "printf %s \"$"+env+"\"")
		if code != 0 || !placeholderRE.MatchString(o) {
			t.Fatalf("%s in %s: exit %d %q, want a placeholder", env, vm, code, o)
		}
		return o
	}
	apiPH, gitPH := placeholder("sec", "API_TOKEN"), placeholder("sec", "GIT_TOKEN")
	if !strings.HasPrefix(apiPH, "banger-secret-api-") || apiPH == gitPH {
		t.Fatalf("placeholders %q and %q", apiPH, gitPH)
	}
	if o, _ := guest("sec", "cat /run/banger/secrets/api"); strings.TrimSpace(o) != apiPH {
		t.Errorf("/run/banger/secrets/api: %q, want %q", o, apiPH)
	}

	// The bound host gets the real value; the guest's curl trusts the
	// VM's CA through the system store banger's agent extended.
	if o, code := guest("sec", `curl -sS --max-time 20 -H "Authorization: Bearer $API_TOKEN" https://api.test/v1/models`); code != 0 || !strings.Contains(o, "api ok") {
		t.Fatalf("curl https://api.test/: exit %d %q", code, o)
	}
	if got := s.last("api.test"); got.Header.Get("Authorization") != "Bearer "+apiValue {
		t.Errorf("api.test received Authorization %q, want the real value", got.Header.Get("Authorization"))
	}
	// Over HTTP/2 too.
	if o, code := guest("sec", `curl -sS --http2 --max-time 20 -o /dev/null -w '%{http_version}' -H "Authorization: Bearer $API_TOKEN" https://api.test/h2`); code != 0 || o != "2" {
		t.Errorf("HTTP/2 through the substitution: exit %d %q", code, o)
	} else if got := s.last("api.test"); got.Header.Get("Authorization") != "Bearer "+apiValue || got.ProtoMajor != 2 {
		t.Errorf("api.test over h2 received %q (HTTP/%d)", got.Header.Get("Authorization"), got.ProtoMajor)
	}
	// An echo of the value comes back as the placeholder.
	o, code := guest("sec", `curl -sS -D - --max-time 20 -H "Authorization: Bearer $API_TOKEN" https://api.test/echo`)
	if code != 0 || strings.Contains(o, apiValue) || !strings.Contains(o, "echo: Bearer "+apiPH) || !strings.Contains(strings.ToLower(o), "x-echo: bearer "+strings.ToLower(apiPH)) {
		t.Errorf("echo from api.test: exit %d\n%s", code, o)
	}
	// Another host gets the placeholder unchanged, over HTTPS (spliced,
	// the guest sees the real server's certificate) and plain HTTP (where
	// the proxy sees it and records a denial).
	if o, code := guest("sec", `curl -sS --max-time 20 --cacert /dev/stdin -H "Authorization: Bearer $API_TOKEN" https://other.test/ <<'EOF'
`+w.caPEM+`EOF`); code != 0 || !strings.Contains(o, "other ok") {
		t.Errorf("curl https://other.test/: exit %d %q", code, o)
	}
	if got := s.last("other.test"); got.Header.Get("Authorization") != "Bearer "+apiPH {
		t.Errorf("other.test (HTTPS) received %q, want the placeholder", got.Header.Get("Authorization"))
	}
	if o, code := guest("sec", `curl -sS --max-time 20 -H "Authorization: Bearer $API_TOKEN" http://other.test/`); code != 0 || !strings.Contains(o, "other ok") {
		t.Errorf("curl http://other.test/: exit %d %q", code, o)
	}
	if got := s.last("other.test"); got.Header.Get("Authorization") != "Bearer "+apiPH {
		t.Errorf("other.test (HTTP) received %q, want the placeholder", got.Header.Get("Authorization"))
	}
	var eg struct {
		Denials []struct{ Via, Name, Reason string } `json:"denials"`
	}
	d.mustJSON(t, &eg, "vm", "egress", "sec")
	found := false
	for _, dn := range eg.Denials {
		found = found || (dn.Via == "secrets" && dn.Name == "other.test")
	}
	if !found {
		t.Errorf("no secrets denial for the placeholder sent to other.test: %+v", eg.Denials)
	}

	// git over HTTPS with the secret as the password (Basic auth).
	if o, code := guest("sec", `git clone -q "https://x-access-token:$GIT_TOKEN@git.test/repo.git" /root/repo && cat /root/repo/README`); code != 0 || !strings.Contains(o, "secret repo") {
		t.Errorf("git clone over HTTPS with the secret: exit %d %q", code, o)
	}

	// Nothing in the guest holds the value: every process's environment
	// and command line (read out to the host, never searched for inside
	// the guest, which would put the value there), then its memory and
	// disks through a snapshot, and banger's whole state and logs.
	o, code = guest("sec", `cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | tr '\0' '\n'; env`)
	if code != 0 || strings.Contains(o, apiValue) || strings.Contains(o, gitValue) || !strings.Contains(o, "API_TOKEN="+apiPH) {
		t.Errorf("guest environments: exit %d, value present %v, placeholder present %v", code,
			strings.Contains(o, apiValue) || strings.Contains(o, gitValue), strings.Contains(o, "API_TOKEN="+apiPH))
	}
	guest("sec", "sync")
	d.must(t, "vm", "snapshot", "sec", "--name", "sec-snap", "--keep-running")
	var sn struct {
		Dir string `json:"dir"`
	}
	d.mustJSON(t, &sn, "snapshot", "show", "sec-snap")
	if n := countInFile(t, filepath.Join(sn.Dir, "ram"), []byte(apiPH)); n == 0 {
		t.Errorf("the memory dump does not hold the placeholder either: the search below proves nothing")
	}
	for _, v := range []string{apiValue, gitValue, hex.EncodeToString([]byte(apiValue))} {
		if hits := findInTree(t, d.dir, []byte(v)); len(hits) > 0 {
			t.Errorf("a secret's value is in the clear in %v", hits)
		}
	}

	// A fork gets new placeholders, which work; the parent's is not
	// substituted in the clone.
	d.must(t, "vm", "fork", "sec", "--name", "kid")
	kidPH := placeholder("kid-1", "API_TOKEN")
	if kidPH == apiPH {
		t.Errorf("the clone kept its parent's placeholder %q", kidPH)
	}
	if o, code := guest("kid-1", `curl -sS --max-time 20 -H "Authorization: Bearer $API_TOKEN" https://api.test/`); code != 0 || !strings.Contains(o, "api ok") {
		t.Errorf("curl from the clone: exit %d %q", code, o)
	} else if got := s.last("api.test"); got.Header.Get("Authorization") != "Bearer "+apiValue {
		t.Errorf("api.test from the clone received %q", got.Header.Get("Authorization"))
	}
	if _, code := guest("kid-1", `curl -sS --max-time 20 -H "Authorization: Bearer `+apiPH+`" https://api.test/`); code != 0 {
		t.Errorf("curl from the clone with the parent's placeholder failed")
	} else if got := s.last("api.test"); got.Header.Get("Authorization") != "Bearer "+apiPH {
		t.Errorf("the parent's placeholder was substituted in the clone: %q", got.Header.Get("Authorization"))
	}

	// A bound secret cannot be removed; once unbound it can.
	if _, e, code := d.run("secret", "rm", "api"); code == 0 || !strings.Contains(e, "sec") {
		t.Errorf("secret rm of a bound secret: exit %d %q", code, e)
	}
	for _, vm := range []string{"kid-1", "sec"} {
		d.must(t, "vm", "delete", "--force", vm)
	}
	var snaps []struct {
		Name string `json:"name"`
	}
	d.mustJSON(t, &snaps, "snapshot", "list")
	for _, sn := range snaps {
		d.must(t, "snapshot", "delete", sn.Name)
	}
	d.must(t, "secret", "rm", "api")
	d.must(t, "secret", "rm", "gitpw")
}

var placeholderRE = regexp.MustCompile(`^banger-secret-[A-Za-z0-9_.-]+-[0-9a-f]{24}$`)

func randHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// secretsWorld adds to the egress world servers that record every request:
// api.test (HTTPS, h2; /echo sends the Authorization header back in a
// header and the body), other.test (HTTPS and HTTP) and git.test (a git
// repository over HTTPS behind Basic auth with the git secret).
type secretsWorld struct {
	mu   sync.Mutex
	seen map[string]*http.Request
}

func newSecretsWorld(t *testing.T, w *egressWorld, gitUser, gitPass string) *secretsWorld {
	t.Helper()
	s := &secretsWorld{seen: map[string]*http.Request{}}
	third := byte(os.Getpid() % 250)
	a := func(last byte) netip.Addr { return netip.AddrFrom4([4]byte{198, 19, third, last}) }
	api, other, git := a(21), a(22), a(23)
	for _, h := range []struct {
		name string
		addr netip.Addr
	}{{"api.test", api}, {"other.test", other}, {"git.test", git}} {
		ipCmd(t, "-n", w.ns, "addr", "add", h.addr.String()+"/32", "dev", "lo")
		w.addName(h.name, h.addr)
	}
	repo := gitRepoForHTTP(t)
	gitHandler := &cgi.Handler{Path: mustLookPath(t, "git"), Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + repo, "GIT_HTTP_EXPORT_ALL=1"}}
	handlers := map[string]http.Handler{
		"api.test": http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/echo" {
				rw.Header().Set("X-Echo", r.Header.Get("Authorization"))
				fmt.Fprintf(rw, "echo: %s\n", r.Header.Get("Authorization"))
				return
			}
			fmt.Fprintln(rw, "api ok")
		}),
		"other.test": http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { fmt.Fprintln(rw, "other ok") }),
		"git.test": http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != gitUser || p != gitPass {
				rw.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(rw, "authentication required", http.StatusUnauthorized)
				return
			}
			gitHandler.ServeHTTP(rw, r)
		}),
	}
	for name, h := range handlers {
		addr := map[string]netip.Addr{"api.test": api, "other.test": other, "git.test": git}[name]
		rec := s.recorder(name, h)
		srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: rec,
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{egressLeaf(t, w.ca, w.caKey, name)}}}
		l := w.listen(t, "tcp", netip.AddrPortFrom(addr, 443)).(net.Listener)
		go srv.ServeTLS(l, "", "")
		t.Cleanup(func() { srv.Close() })
		if name == "other.test" {
			plain := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: rec}
			go plain.Serve(w.listen(t, "tcp", netip.AddrPortFrom(addr, 80)).(net.Listener))
			t.Cleanup(func() { plain.Close() })
		}
	}
	return s
}

// recorder keeps the last request each host received.
func (s *secretsWorld) recorder(host string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.seen[host] = r.Clone(r.Context())
		s.mu.Unlock()
		h.ServeHTTP(rw, r)
	})
}

// last is the last request host received (an empty one when none).
func (s *secretsWorld) last(host string) *http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.seen[host]; r != nil {
		return r
	}
	return &http.Request{Header: http.Header{}}
}

// gitRepoForHTTP makes a bare repository (repo.git) with one commit in a
// temporary folder and returns the folder.
func gitRepoForHTTP(t *testing.T) string {
	t.Helper()
	root, work := t.TempDir(), t.TempDir()
	if o, err := exec.Command("git", "-C", work, "init", "-q", "-b", "main").CombinedOutput(); err != nil {
		t.Fatalf("git init: %v %s", err, o)
	}
	if err := os.WriteFile(filepath.Join(work, "README"), []byte("secret repo\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{
		{"-C", work, "add", "README"},
		{"-C", work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "readme"},
		{"clone", "-q", "--bare", work, filepath.Join(root, "repo.git")},
	} {
		if o, err := exec.Command("git", c...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", c, err, o)
		}
	}
	return root
}

func mustLookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return p
}

// countInFile counts the occurrences of needle in the file's data, reading
// only its data segments (the VM's disks are sparse).
func countInFile(t testing.TB, path string, needle []byte) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	buf := make([]byte, 1<<20+len(needle))
	fd := int(f.Fd())
	for off := int64(0); ; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err != nil {
			break // ENXIO: no data after off
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			t.Fatalf("%s: seek hole: %v", path, err)
		}
		for pos := data; pos < hole; {
			m, err := f.ReadAt(buf[:min(int64(len(buf)), hole-pos)], pos)
			n += bytes.Count(buf[:m], needle)
			if err != nil && !errors.Is(err, io.EOF) {
				t.Fatalf("%s: %v", path, err)
			}
			if m <= len(needle) || pos+int64(m) >= hole {
				break
			}
			// The next read starts len(needle)-1 bytes back, so a match
			// across two reads is seen (and one inside the overlap,
			// shorter than the needle, never twice).
			pos += int64(m - len(needle) + 1)
		}
		off = hole
	}
	return n
}

// findInTree lists the regular files under root holding needle.
func findInTree(t testing.TB, root string, needle []byte) []string {
	t.Helper()
	var hits []string
	filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return nil
		}
		if countInFile(t, p, needle) > 0 {
			hits = append(hits, p)
		}
		return nil
	})
	return hits
}
