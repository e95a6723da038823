package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// BenchmarkForward compares a banger forward with OpenSSH's `ssh -L`
// through the same guest agent, to the same guest-loopback server (busybox
// httpd): throughput of a 32 MiB download, and connection setup (connect,
// send a request, first byte back) with p50 and p99. Run it under the e2e
// lock:
//
//	flock -o /tmp/banger-e2e.lock go test -run XXX -bench BenchmarkForward -benchtime 20x ./test/e2e/
func BenchmarkForward(b *testing.B) {
	d := newDaemon(b)
	b.Cleanup(func() {
		cleanupNet(d)
		exec.Command("nft", "delete", "table", "inet", tableOf(d.bridge)+"-fwd").Run()
	})
	d.must(b, "kernel", "pull", "debian-12-cloud")
	registerBusybox(b, d, "bb")
	const vm = "fwbench"
	d.must(b, "vm", "create", "--name", vm, "--image", "bb", "--memory", "512", "--vcpus", "2")
	d.must(b, "vm", "exec", vm, "--", "sh", "-c", `mkdir -p /root/www && echo hi > /root/www/small &&
busybox dd if=/dev/urandom of=/root/www/big bs=1M count=32 2>/dev/null &&
ln -sf /bin/busybox /bin/httpd && ln -sf /bin/busybox /bin/setsid &&
setsid httpd -f -p 127.0.0.1:9000 -h /root/www </dev/null >/dev/null 2>&1 &
true`)

	fwdPort := forwardBenchFreePort(b)
	d.must(b, "vm", "forward", vm, fmt.Sprintf("127.0.0.1:%d:9000", fwdPort))

	cfg := filepath.Join(b.TempDir(), "ssh_config")
	if err := os.WriteFile(cfg, []byte(d.must(b, "vm", "ssh-config", vm)), 0o600); err != nil {
		b.Fatal(err)
	}
	sshPort := forwardBenchFreePort(b)
	ctx, cancel := context.WithCancel(context.Background())
	ssh := exec.CommandContext(ctx, "ssh", "-F", cfg, "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-N",
		"-L", fmt.Sprintf("127.0.0.1:%d:127.0.0.1:9000", sshPort), vm+".vm")
	if err := ssh.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cancel(); ssh.Wait() })

	paths := map[string]int{"forward": fwdPort, "ssh-L": sshPort}
	for _, name := range []string{"forward", "ssh-L"} {
		addr := fmt.Sprintf("127.0.0.1:%d", paths[name])
		deadline := time.Now().Add(time.Minute)
		for {
			if _, err := forwardBenchGet(addr, "/small"); err == nil {
				break
			} else if time.Now().After(deadline) {
				b.Fatalf("%s: %v", name, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, name := range []string{"forward", "ssh-L"} {
		addr := fmt.Sprintf("127.0.0.1:%d", paths[name])
		b.Run("throughput/"+name, func(b *testing.B) {
			b.SetBytes(32 << 20)
			for range b.N {
				n, err := forwardBenchGet(addr, "/big")
				if err != nil || n != 32<<20 {
					b.Fatalf("got %d bytes: %v", n, err)
				}
			}
		})
		b.Run("connect/"+name, func(b *testing.B) {
			var lat []time.Duration
			for range b.N {
				start := time.Now()
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				fmt.Fprintf(c, "GET /small HTTP/1.0\r\n\r\n")
				if _, err := bufio.NewReader(c).ReadByte(); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
				c.Close()
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds())/1000, "p99-ms")
		})
	}
}

func forwardBenchFreePort(b *testing.B) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// forwardBenchGet fetches path over HTTP/1.0 and returns the body's size.
func forwardBenchGet(addr, path string) (int64, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	fmt.Fprintf(c, "GET %s HTTP/1.0\r\n\r\n", path)
	r := bufio.NewReaderSize(c, 256<<10)
	status, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if !strings.Contains(status, " 200 ") {
		return 0, fmt.Errorf("status %q", strings.TrimSpace(status))
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return 0, err
		}
		if line == "\r\n" || line == "\n" {
			break
		}
	}
	return io.Copy(io.Discard, r)
}
