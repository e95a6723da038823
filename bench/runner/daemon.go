package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// daemon is one bangerd with its own state folder, socket, bridge and subnet.
type daemon struct {
	cfg    *config
	dir    string
	socket string
	state  string
	proc   *exec.Cmd
	logf   *os.File
	http   *http.Client
}

// startDaemon launches bangerd in a fresh folder under the work folder and
// waits until it answers.
func startDaemon(ctx context.Context, cfg *config) (*daemon, error) {
	dir, err := os.MkdirTemp(cfg.work, "daemon-")
	if err != nil {
		return nil, err
	}
	d := &daemon{cfg: cfg, dir: dir, socket: filepath.Join(dir, "bangerd.sock"), state: filepath.Join(dir, "state")}
	d.logf, err = os.Create(filepath.Join(dir, "bangerd.out"))
	if err != nil {
		return nil, err
	}
	args := []string{"--socket", d.socket, "--state-dir", d.state, "--accel", cfg.accel}
	if cfg.debug {
		args = append(args, "--debug")
	}
	d.proc = exec.Command(filepath.Join(cfg.bin, "bangerd"), args...)
	d.proc.Env = d.env()
	d.proc.Stdout, d.proc.Stderr = d.logf, d.logf
	d.proc.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.proc.Start(); err != nil {
		return nil, fmt.Errorf("start bangerd: %w", err)
	}
	go d.proc.Wait()
	d.http = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", d.socket)
	}}}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := d.cli(ctx, "ping"); err == nil {
			return d, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, _ := os.ReadFile(d.logf.Name())
	d.close()
	return nil, fmt.Errorf("bangerd did not answer within 60s:\n%s", out)
}

func (d *daemon) env() []string {
	return append(os.Environ(), "BANGER_BRIDGE="+d.cfg.bridge, "BANGER_SUBNET="+d.cfg.subnet,
		"XDG_CONFIG_HOME="+filepath.Join(d.dir, "config"))
}

// pid is bangerd's process id.
func (d *daemon) pid() int { return d.proc.Process.Pid }

// cli runs the banger CLI against this daemon and returns stdout.
func (d *daemon) cli(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(d.cfg.bin, "banger"), append([]string{"--socket", d.socket}, args...)...)
	cmd.Env = d.env()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		return o.String(), fmt.Errorf("banger %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(e.String()))
	}
	return o.String(), nil
}

// cliJSON runs the CLI with --json and decodes its output into v.
func (d *daemon) cliJSON(ctx context.Context, v any, args ...string) error {
	out, err := d.cli(ctx, append([]string{"--json"}, args...)...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("banger %s: decode output: %w", strings.Join(args, " "), err)
	}
	return nil
}

// get calls a read-only API route directly over the socket.
func (d *daemon) get(ctx context.Context, route string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://bangerd"+route, nil)
	if err != nil {
		return err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var sink bytes.Buffer
	sink.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", route, resp.Status)
	}
	return nil
}

// vm is the part of a VM record the benchmarks read.
type vm struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	State string `json:"state"`
	PID   int    `json:"pid"`
	Dir   string `json:"dir"`
}

// createVM runs `vm create` to ready and returns the record.
func (d *daemon) createVM(ctx context.Context, name, image string, extra ...string) (vm, error) {
	var v vm
	args := append([]string{"vm", "create", "--name", name, "--image", image}, extra...)
	err := d.cliJSON(ctx, &v, args...)
	return v, err
}

// deleteVM deletes one VM, forcing it off.
func (d *daemon) deleteVM(ctx context.Context, name string) error {
	_, err := d.cli(ctx, "vm", "delete", "--force", name)
	return err
}

// close deletes every VM, stops the daemon and removes its bridge and table.
func (d *daemon) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if d.proc != nil && d.proc.ProcessState == nil {
		d.cli(ctx, "vm", "delete", "--all", "--force")
		d.proc.Process.Signal(os.Interrupt)
		for i := 0; i < 400 && !exited(d.proc.Process.Pid); i++ {
			time.Sleep(50 * time.Millisecond)
		}
		if !exited(d.proc.Process.Pid) {
			d.proc.Process.Kill()
		}
	}
	if d.logf != nil {
		d.logf.Close()
	}
	removeNetwork(d.cfg.bridge)
	if !d.cfg.keep {
		os.RemoveAll(d.dir)
	}
}

// exited reports whether pid is gone (or a zombie).
func exited(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z'
	}
	return false
}

// rssBytes reads VmRSS of pid.
func rssBytes(pid int) (int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				kb, err := strconv.ParseInt(f[1], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("pid %d: no VmRSS", pid)
}

// writeBytes reads write_bytes from /proc/PID/io.
func writeBytes(pid int) (int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "write_bytes: "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("pid %d: no write_bytes", pid)
}
