package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"banger/internal/api"
	"banger/internal/guest/agenttest"
	"banger/internal/model"
	"banger/internal/workspace"
)

// hostGuest plays the guest agent on the host's files (as the workspace
// tests do).
var hostGuest = agenttest.Local{PATH: os.Getenv("PATH")}

// hostWorkspaces is the real workspace service against hostGuest.
type hostWorkspaces struct {
	s     *workspace.Service
	state string
}

func (h hostWorkspaces) Prepare(ctx context.Context, p api.VMWorkspacePrepareParams) (model.WorkspacePrepareResult, error) {
	return h.s.Prepare(ctx, hostGuest, h.state, workspace.Caller{UID: os.Getuid(), GID: os.Getgid()}, p, "bench")
}

func (h hostWorkspaces) Export(ctx context.Context, p api.WorkspaceExportParams, w io.Writer) (api.WorkspaceExportResult, error) {
	return h.s.Export(ctx, hostGuest, h.state, workspace.Caller{UID: os.Getuid(), GID: os.Getgid()}, p, w)
}

// peakRSS returns VmHWM in bytes; resetPeakRSS starts a new measurement.
func peakRSS(tb testing.TB) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		tb.Skip("no /proc/self/status")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	tb.Skip("no VmHWM")
	return 0
}

func resetPeakRSS(tb testing.TB) {
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		tb.Skip("cannot reset the peak RSS: ", err)
	}
}

// BenchmarkExportLargePatch exports a workspace with a large patch
// (BANGER_BENCH_EXPORT_MB MiB of new text, default 256) through the real
// server, client and workspace code, the guest being a host folder, and
// reports the peak RSS of this process (server and client) during the
// export.
func BenchmarkExportLargePatch(b *testing.B) {
	if _, err := exec.LookPath("git"); err != nil {
		b.Skip("git is not installed")
	}
	mb := 256
	if v, err := strconv.Atoi(os.Getenv("BANGER_BENCH_EXPORT_MB")); err == nil && v > 0 {
		mb = v
	}
	dir := b.TempDir()
	repo, ws := filepath.Join(dir, "repo"), filepath.Join(dir, "guest")
	run := func(args ...string) {
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=b", "-c", "user.email=b@b"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("git %v: %v: %s", args, err, out)
		}
	}
	os.MkdirAll(repo, 0o755)
	run("init", "-q")
	os.WriteFile(filepath.Join(repo, "README"), []byte("bench\n"), 0o644)
	run("add", "-A")
	run("commit", "-q", "-m", "init")
	svc := workspace.New(nil)
	hw := hostWorkspaces{s: svc, state: filepath.Join(dir, "state")}
	c := serveSocket(b, Services{Workspaces: hw})
	ctx := context.Background()
	if _, err := c.WorkspacePrepare(ctx, api.VMWorkspacePrepareParams{IDOrName: "bench", SourcePath: repo, GuestPath: ws}); err != nil {
		b.Fatal(err)
	}
	// mb MiB of new text files, 16 MiB each.
	line := strings.Repeat("0123456789abcdef", 7) + "\n"
	for i := 0; i*16 < mb; i++ {
		f, err := os.Create(filepath.Join(ws, fmt.Sprintf("data-%03d.txt", i)))
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriterSize(f, 1<<20)
		for n := 0; n < 16<<20; n += len(line) {
			w.WriteString(line)
		}
		w.Flush()
		f.Close()
	}
	b.ResetTimer()
	var peak, size int64
	for range b.N {
		resetPeakRSS(b)
		cw := &countWriter{}
		if _, err := c.WorkspaceExportTo(ctx, api.WorkspaceExportParams{IDOrName: "bench", GuestPath: ws}, cw); err != nil {
			b.Fatal(err)
		}
		peak = max(peak, peakRSS(b))
		size = cw.n
	}
	b.ReportMetric(float64(size)/(1<<20), "patch-MiB")
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }
