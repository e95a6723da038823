package initsys

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"banger/internal/agent/reap"
	"banger/internal/agent/sshd"
	"banger/internal/bootcfg"
)

// DefaultPath is PATH for the agent and its children unless the config sets one.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// SSHAddr is where the agent serves SSH.
const SSHAddr = ":22"

// Stage2 runs "banger-agent init" as PID 1 in the VM's root. In image init
// mode it starts "banger-agent serve" and execs the image's /sbin/init;
// otherwise it serves until told to power off, then shuts the machine down.
// It returns only on a setup error.
func Stage2(log *slog.Logger) error {
	log.Info("stage 2 started")
	cfg, err := ReadConfigFile(ConfigPath)
	if err != nil {
		return err
	}
	setProcessEnv(cfg.Env)
	imageInit := cfg.InitMode == bootcfg.InitImage && isExecutable("/sbin/init")
	if cfg.InitMode == bootcfg.InitImage && !imageInit {
		log.Warn("init mode image but /sbin/init is missing: banger's init stays PID 1")
	}
	// The network (netlink, /proc/sys from stage 1) is set up while the
	// other kernel filesystems are mounted.
	netDone := make(chan error, 1)
	go func() { netDone <- ConfigureNetwork(context.Background(), cfg.Network, log) }()
	if err := mountAPI(!imageInit); err != nil {
		return err
	}
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
		log.Warn("set hostname", "err", err)
	}
	if err := <-netDone; err != nil {
		return err
	}
	if set, err := SetClockFloor(cfg.HostTimeUnixNano); err != nil {
		log.Warn("clock", "err", err)
	} else if set {
		log.Info("clock set from host time")
	}
	installSecrets(cfg, log)
	installTrust(cfg.CACerts, log)
	// Every vCPU is up before the VM is announced ready (or the image's
	// init takes over, which would not start them).
	waitCPUs(log)

	if imageInit {
		return handOver(log)
	}

	// Ctrl-Alt-Del (Firecracker's SendCtrlAltDel) now sends SIGINT to us.
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF); err != nil {
		log.Warn("disable ctrl-alt-del reboot", "err", err)
	}
	reapCtx, stopReap := context.WithCancel(context.Background())
	defer stopReap()
	go reap.Loop(reapCtx)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGPWR)
	poweroff := make(chan struct{}, 1)
	requestPoweroff := func() {
		select {
		case poweroff <- struct{}{}:
		default:
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served, err := startSSH(ctx, cfg, requestPoweroff, log)
	if err != nil {
		return err
	}
	if cfg.StartDocker {
		startDocker(log)
	}

	select {
	case sig := <-sigs:
		log.Info("signal received", "signal", sig.String())
	case <-poweroff:
		log.Info("power off requested by the host")
	case err := <-served:
		log.Error("ssh server stopped", "err", err)
	}
	cancel()
	Shutdown(log)
	return errors.New("shutdown returned")
}

// Serve is "banger-agent serve": the SSH server alone, used when the image's
// init is PID 1. It returns when SIGTERM/SIGINT arrives or the server fails.
func Serve(log *slog.Logger) error {
	cfg, err := ReadConfigFile(ConfigPath)
	if err != nil {
		return err
	}
	setProcessEnv(cfg.Env)
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
	defer stop()
	served, err := startSSH(ctx, cfg, func() { poweroffImage(log) }, log)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-served:
		return err
	}
}

// startSSH listens on SSHAddr, announces readiness on the console and serves
// in the background; the channel yields Serve's result.
func startSSH(ctx context.Context, cfg *bootcfg.Config, poweroff func(), log *slog.Logger) (<-chan error, error) {
	ln, err := net.Listen("tcp", SSHAddr)
	if err != nil {
		return nil, fmt.Errorf("ssh server: %w", err)
	}
	scfg := sshd.Config{
		HostKey:        []byte(cfg.SSHHostKey),
		AuthorizedKeys: cfg.AuthorizedKeys,
		Env:            withTrustEnv(cfg.Env),
		Secrets:        cfg.Secrets,
		Poweroff:       poweroff,
		Disks:          sshd.DiskPaths{Root: "/", Work: "/root", Overlay: OverlayDir},
		ControlPort:    func() string { return findControlPort("/sys", "/dev") },
		Reidentify:     reidentifier(cfg, log),
		SetSecrets:     secretsSetter(log),
	}
	served := make(chan error, 1)
	go func() { served <- sshd.Serve(ctx, ln, scfg, log.With("component", "sshd")) }()
	log.Info("ssh listening", "addr", ln.Addr().String(), "authorized_keys", len(cfg.AuthorizedKeys))
	log.Info("ready")
	return served, nil
}

// handOver starts "banger-agent serve" and replaces this process with the
// image's /sbin/init, which then owns PID 1 and reaps the agent's orphans.
func handOver(log *slog.Logger) error {
	cmd := exec.Command(AgentPath, "serve")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if console, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
		cmd.Stdout, cmd.Stderr = console, console
		defer console.Close()
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start agent server: %w", err)
	}
	log.Info("handing over to the image's init", "agent_pid", cmd.Process.Pid)
	err := unix.Exec("/sbin/init", []string{"/sbin/init"}, []string{"HOME=/", "TERM=linux", "PATH=" + DefaultPath})
	_ = cmd.Process.Kill()
	return fmt.Errorf("exec /sbin/init: %w", err)
}

// poweroffImage asks the image's init to power off (agent "poweroff" op).
func poweroffImage(log *slog.Logger) {
	cmd := exec.Command("poweroff")
	wait, err := reap.Start(cmd)
	if err == nil {
		_, err = wait()
	}
	if err != nil {
		log.Error("poweroff through the image's init failed", "err", err)
	}
}

// startDocker runs dockerd in the background when the image has it.
func startDocker(log *slog.Logger) {
	path, err := exec.LookPath("dockerd")
	if err != nil {
		log.Warn("start_docker set but dockerd is not in PATH")
		return
	}
	if err := os.MkdirAll("/var/log", 0o755); err != nil {
		log.Error("start dockerd", "err", err)
		return
	}
	out, err := os.OpenFile("/var/log/dockerd.log", os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		log.Error("start dockerd", "err", err)
		return
	}
	defer out.Close()
	cmd := exec.Command(path)
	cmd.Stdout, cmd.Stderr = out, out
	wait, err := reap.Start(cmd)
	if err != nil {
		log.Error("start dockerd", "err", err)
		return
	}
	log.Info("dockerd started", "pid", cmd.Process.Pid, "log", "/var/log/dockerd.log")
	go func() {
		st, err := wait()
		log.Warn("dockerd exited", "status", st.ExitStatus(), "err", err)
	}()
}

// mountAPI mounts the kernel filesystems the system needs; tmp adds a tmpfs
// /tmp unless the image's fstab arranges /tmp itself.
func mountAPI(tmp bool) error {
	const nsd = unix.MS_NOSUID | unix.MS_NODEV
	mounts := []struct {
		src, target, fstype string
		flags               uintptr
		data                string
	}{
		{"proc", "/proc", "proc", nsd | unix.MS_NOEXEC, ""},
		{"sysfs", "/sys", "sysfs", nsd | unix.MS_NOEXEC, ""},
		{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
		{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "ptmxmode=0666,gid=5,mode=620"},
		{"tmpfs", "/dev/shm", "tmpfs", nsd, "mode=1777"},
	}
	for _, m := range mounts {
		if err := mountFS(m.src, m.target, m.fstype, m.flags, m.data); err != nil {
			return err
		}
	}
	if _, err := os.Stat("/sys/fs/cgroup"); err == nil {
		if err := mountFS("cgroup2", "/sys/fs/cgroup", "cgroup2", nsd|unix.MS_NOEXEC, ""); err != nil {
			return err
		}
	}
	if tmp && !fstabHas("/etc/fstab", "/tmp") {
		if err := mountFS("tmpfs", "/tmp", "tmpfs", nsd, "mode=1777"); err != nil {
			return err
		}
	}
	for name, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		_ = os.Symlink(target, filepath.Join("/dev", name)) // exists already: fine
	}
	return nil
}

// fstabHas reports whether fstab mounts something at target.
func fstabHas(fstab, target string) bool {
	f, err := os.Open(fstab)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && !strings.HasPrefix(fields[0], "#") && filepath.Clean(fields[1]) == target {
			return true
		}
	}
	return false
}

// setProcessEnv sets the agent's own environment: PATH (from env when it
// has one), HOME and TERM.
func setProcessEnv(env []string) {
	path := DefaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok && v != "" {
			path = v
		}
	}
	os.Clearenv()
	os.Setenv("PATH", path)
	os.Setenv("HOME", "/root")
	os.Setenv("TERM", "linux")
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}
