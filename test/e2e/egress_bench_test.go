package e2e

import (
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// egressBenchMiB is the size of the HTTPS download in the throughput run.
const egressBenchMiB = 16

// egressBenchConns is how many HTTPS connections one latency iteration makes.
const egressBenchConns = 10

// BenchmarkEgress compares HTTPS through the egress proxy (`--egress allow`)
// with plain NAT (`--egress open`) from the same Debian VM (the policy is
// switched on the running VM) against TestEgress's simulated outside world:
// the download speed curl reports in the guest for a 16 MiB body from
// svc.test, and per-connection latency (TCP connect + TLS handshake + first
// byte, name lookup excluded) to good.test, p50 and p99. Run it under the
// e2e lock:
//
//	flock -o /tmp/banger-e2e.lock go test -count=1 -run '^$' -bench BenchmarkEgress -benchtime 5x -timeout 20m ./test/e2e/
func BenchmarkEgress(b *testing.B) {
	resolv := filepath.Join(b.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	d := newHostileNetDaemon(b, "BANGER_RESOLV_CONF="+resolv)
	b.Cleanup(func() { cleanupNet(d) })
	w := newEgressWorld(b, d.subnet)
	if err := os.WriteFile(resolv, []byte("nameserver "+w.dns.String()+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	// The world serves only small bodies; svc.test has no HTTPS server, so
	// the big one goes there, under a CA of this benchmark's own.
	ca, caKey := egressCA(b)
	cert := egressLeaf(b, ca, caKey, "svc.test")
	w.serveHTTP(b, w.svc, 443, &tls.Config{Certificates: []tls.Certificate{cert}}, strings.Repeat("x", egressBenchMiB<<20-1))
	caPEM := w.caPEM + string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}))

	d.must(b, "kernel", "pull", "debian-12-cloud")
	img := debianImage(b, d)
	const vm = "egbench"
	allow := []string{"--egress", "allow", "--allow", "good.test,svc.test"}
	d.must(b, append([]string{"vm", "create", "--name", vm, "--image", img, "--memory", "512", "--vcpus", "2"}, allow...)...)
	guest := func(script string) string {
		o, e, code := d.run("vm", "exec", vm, "--", "bash", "-c", script)
		if code != 0 {
			b.Fatalf("guest %q: exit %d\n%s%s", script, code, o, e)
		}
		return o
	}
	guest("cat > /tmp/ca.pem <<'EOF'\n" + caPEM + "EOF\n")
	curl := "curl -sS --max-time 120 --cacert /tmp/ca.pem -o /dev/null "

	for _, mode := range []struct {
		name string
		set  []string
	}{{"proxy", allow}, {"nat", []string{"--egress", "open"}}} {
		d.must(b, append([]string{"vm", "set", vm}, mode.set...)...)
		guest(curl + "https://good.test/ && " + curl + "https://svc.test/") // warm up, and fail early
		b.Run("throughput/"+mode.name, func(b *testing.B) {
			var speeds []float64
			for range b.N {
				f := strings.Fields(guest(curl + "-w '%{size_download} %{speed_download}' https://svc.test/"))
				if len(f) != 2 || f[0] != strconv.Itoa(egressBenchMiB<<20) {
					b.Fatalf("download: %q", f)
				}
				s, err := strconv.ParseFloat(f[1], 64)
				if err != nil {
					b.Fatal(err)
				}
				speeds = append(speeds, s/(1<<20))
			}
			sort.Float64s(speeds)
			b.ReportMetric(speeds[len(speeds)/2], "MiB/s")
		})
		b.Run("connect/"+mode.name, func(b *testing.B) {
			var lat []float64
			loop := fmt.Sprintf("for i in $(seq %d); do %s -w '%%{time_namelookup} %%{time_starttransfer}\\n' https://good.test/ || exit 1; done", egressBenchConns, curl)
			for range b.N {
				for _, line := range strings.Split(strings.TrimSpace(guest(loop)), "\n") {
					var lookup, first float64
					if _, err := fmt.Sscan(line, &lookup, &first); err != nil {
						b.Fatalf("curl timings %q: %v", line, err)
					}
					lat = append(lat, (first-lookup)*1000)
				}
			}
			sort.Float64s(lat)
			b.ReportMetric(lat[len(lat)/2], "p50-ms")
			b.ReportMetric(lat[(len(lat)*99)/100], "p99-ms")
		})
	}
}
