package vm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"banger/internal/bootcfg"
	"banger/internal/guest"
	"banger/internal/initramfs"
	"banger/internal/model"
	"banger/internal/paths"
	"banger/internal/vmm"
)

// bootRun carries one boot of one VM through its steps.
type bootRun struct {
	vm     *model.VMRecord
	img    model.Image
	kernel string
	initrd string
	client *guest.Client
	// report moves the create operation to a stage (no-op for start).
	report func(stage, detail string)
	// netcfg is the guest network configuration from the attachment.
	netcfg *bootcfg.Network
}

// step is one named step of a boot; the steps run in order. stage is the
// create stage a user sees it as (several steps make the "boot" stage).
type step struct {
	name, stage string
	run         func(ctx context.Context, b *bootRun) error
}

// maxStallRestarts bounds VMM restarts after a stalled boot (see
// watchConsole); vmmStep is the
// name of the step that starts the VMM, where a restart resumes.
const (
	maxStallRestarts = 2
	vmmStep          = "vmm"
)

// bootSteps is the boot, as named ordered steps shared by create and start.
func (m *Manager) bootSteps() []step {
	return []step{
		{"network", "network", m.stepNetwork},
		{"config", "boot", m.stepConfig},
		{"initrd", "boot", m.stepInitrd},
		{vmmStep, "boot", m.stepVMM},
		{"agent", "agent", m.stepAgent},
	}
}

// boot runs the steps; on failure it stops whatever started and returns the
// error with the serial log tail.
func (m *Manager) boot(ctx context.Context, b *bootRun) error {
	return m.runSteps(ctx, b, m.steps())
}

// runSteps runs steps in order. A guest that stalls before banger's init
// (seen rarely under TCG: a hang in early kernel boot) gets its VMM started
// again, same disks and tap, at most maxStallRestarts times; each restart is
// logged and counted in the VM record (BootRestarts, for this boot).
func (m *Manager) runSteps(ctx context.Context, b *bootRun, steps []step) error {
	b.vm.BootRestarts = 0
	clearStalls(b.vm)
	slot := false
	defer func() {
		if slot {
			m.slots.release()
		}
	}()
	for i := 0; i < len(steps); i++ {
		s := steps[i]
		t0 := time.Now()
		var err error
		if s.name == vmmStep && !slot && m.slots != nil {
			err = m.slots.acquire(ctx, func(booting int) {
				m.log.Debug("boot queued", "vm", b.vm.Name, "booting", booting)
				if b.report != nil {
					b.report(s.stage, fmt.Sprintf("queued behind %d booting guests", booting))
				}
			})
			slot = err == nil
		}
		if err == nil {
			err = s.run(ctx, b)
		}
		m.log.Debug("boot step", "vm", b.vm.Name, "step", s.name, "took", time.Since(t0), "err", err)
		var record string
		if errors.Is(err, errBootStalled) {
			record = m.recordStall(b.vm, b.vm.BootRestarts+1, err)
		}
		if errors.Is(err, errBootStalled) && b.vm.BootRestarts < maxStallRestarts {
			b.vm.BootRestarts++
			m.log.Warn("guest boot stalled; restarting its vmm", "vm", b.vm.Name, "restart", b.vm.BootRestarts, "reason", err, "record", record)
			qctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			if err := m.backend.Quit(qctx, filepath.Join(b.vm.Dir, paths.VMRunDir)); err != nil {
				m.log.Warn("stop the stalled vmm", "vm", b.vm.Name, "err", err)
			}
			cancel()
			i = slices.IndexFunc(steps, func(s step) bool { return s.name == vmmStep }) - 1
			continue
		}
		if err != nil {
			m.halt(b.vm)
			if b.vm.BootRestarts > 0 {
				err = fmt.Errorf("%w (after %d vmm restarts)", err, b.vm.BootRestarts)
			}
			if s.stage == "agent" || s.stage == "boot" {
				if t := tail(filepath.Join(b.vm.Dir, paths.VMSerialLog), 15); t != "" {
					err = fmt.Errorf("%w\nserial console (%s), last lines:\n%s", err, filepath.Join(b.vm.Dir, paths.VMSerialLog), t)
				}
			}
			return fmt.Errorf("%s: %w", s.stage, err)
		}
	}
	return nil
}

// halt stops a half-booted VM's VMM and releases its network.
func (m *Manager) halt(vm *model.VMRecord) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	runDir := filepath.Join(vm.Dir, paths.VMRunDir)
	if err := m.backend.Quit(ctx, runDir); err != nil && !errors.Is(err, vmm.ErrNotRunning) {
		m.log.Warn("stop vmm", "vm", vm.Name, "err", err)
	}
	if err := m.net.Detach(ctx, vm.ID); err != nil {
		m.log.Warn("detach network", "vm", vm.Name, "err", err)
	}
	vm.PID = 0
}

// stepNetwork attaches the VM to the host (bridge or user mode, whichever
// the manager's Network is) and records where it is.
func (m *Manager) stepNetwork(ctx context.Context, b *bootRun) error {
	b.report("network", "attaching to the host network")
	if err := m.checkSecretPolicy(*b.vm); err != nil {
		return err
	}
	att, err := m.net.Attach(ctx, b.vm.ID, b.vm.NATEnabled)
	if err != nil {
		return err
	}
	if err := m.applyEgress(ctx, *b.vm); err != nil {
		return err
	}
	b.vm.Network, b.vm.SSHPort = att.Mode, att.SSHHostPort
	b.vm.TapDevice, b.vm.MAC = att.Tap, att.MAC
	b.vm.GuestIP, b.vm.GatewayIP = att.Address.Addr().String(), att.Gateway.String()
	b.vm.DNSName = ""
	if att.Domain != "" {
		b.vm.DNSName = b.vm.Name + "." + att.Domain
	}
	b.netcfg = att.BootNetwork()
	return nil
}

// stepConfig writes the boot configuration disk.
func (m *Manager) stepConfig(ctx context.Context, b *bootRun) error {
	b.report("boot", "writing boot configuration")
	cfg, err := m.bootConfig(b)
	if err != nil {
		return err
	}
	return writeConfigDisk(filepath.Join(b.vm.Dir, paths.VMConfig), cfg)
}

// bootConfig is the guest's boot configuration: identity, keys, network,
// and the placeholders of its secrets with the CA it trusts for them.
func (m *Manager) bootConfig(b *bootRun) (*bootcfg.Config, error) {
	hostKey, err := os.ReadFile(filepath.Join(b.vm.Dir, paths.VMHostKey))
	if err != nil {
		return nil, fmt.Errorf("read host key: %w", err)
	}
	keys := append([]string{authorizedLine(m.signer)}, b.vm.AuthorizedKeys...)
	cfg := &bootcfg.Config{
		VMID: b.vm.ID, Hostname: b.vm.Name, SSHHostKey: string(hostKey), AuthorizedKeys: keys,
		InitMode: initMode(b.img), StartDocker: b.img.Docker, HostTimeUnixNano: time.Now().UnixNano(),
		Env: b.img.Env, Network: b.netcfg,
	}
	if err := m.secretsConfig(*b.vm, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// stepInitrd resolves the kernel and composes the initrd: the kernel's
// modules archive followed by the agent archive (the kernel unpacks
// concatenated cpio archives). Composed initrds are cached by content.
func (m *Manager) stepInitrd(ctx context.Context, b *bootRun) error {
	kernel, modules, err := m.kernels.BootFiles(ctx, b.vm.KernelName)
	if err != nil {
		return err
	}
	b.kernel = kernel
	b.initrd, err = m.composeInitrd(modules)
	return err
}

func (m *Manager) composeInitrd(modules string) (string, error) {
	h := sha256.New()
	for _, p := range []string{modules, m.cfg.AgentPath} {
		if p == "" {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("initrd part: %w", err)
		}
		fmt.Fprintf(h, "%s %d %d\n", p, fi.Size(), fi.ModTime().UnixNano())
	}
	dir := filepath.Join(m.cfg.State.Cache(), "initrd")
	out := filepath.Join(dir, hex.EncodeToString(h.Sum(nil))[:24]+".cpio")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, ".initrd-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	if modules != "" {
		src, err := os.Open(modules)
		if err != nil {
			f.Close()
			return "", fmt.Errorf("modules archive: %w", err)
		}
		_, err = io.Copy(f, src)
		src.Close()
		if err != nil {
			f.Close()
			return "", err
		}
	}
	if err := initramfs.AgentArchive(f, m.cfg.AgentPath); err != nil {
		f.Close()
		return "", fmt.Errorf("agent archive: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return out, os.Rename(f.Name(), out)
}

// stepVMM starts the VMM detached.
func (m *Manager) stepVMM(ctx context.Context, b *bootRun) error {
	b.report("boot", "starting "+m.backend.Name())
	spec := specFor(*b.vm, b.img, b.kernel, b.initrd)
	spec.Cmdline = guestCmdline()
	os.Remove(spec.SerialLog)
	proc, err := m.backend.Start(ctx, spec)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	b.vm.PID, b.vm.Backend, b.vm.StartedAt, b.vm.StoppedAt, b.vm.StopReason = proc.PID, proc.Backend, &now, nil, ""
	b.vm.AccelReason = m.accelReason(proc.Backend)
	return nil
}

// accelReason is why a VM started now on backend runs under its
// accelerator, "" when unknown.
func (m *Manager) accelReason(backend string) string {
	if m.cfg.AccelReason == nil {
		return ""
	}
	return m.cfg.AccelReason(backend)
}

// stepAgent waits until the guest agent answers its health check.
func (m *Manager) stepAgent(ctx context.Context, b *bootRun) error {
	b.report("agent", "waiting for the guest agent")
	ctx, cancel := context.WithTimeout(ctx, m.cfg.ReadyTimeout)
	defer cancel()
	exited := make(chan struct{})
	go func() {
		m.backend.Wait(ctx, filepath.Join(b.vm.Dir, paths.VMRunDir))
		close(exited)
		cancel()
	}()
	stalled := make(chan error, 1)
	go func() {
		if err := m.watchConsole(ctx, filepath.Join(b.vm.Dir, paths.VMSerialLog)); errors.Is(err, errBootStalled) {
			stalled <- err
			cancel()
		}
	}()
	if err := m.waitAgent(ctx, b.vm); err != nil {
		select {
		case serr := <-stalled:
			return serr
		default:
		}
		select {
		case <-exited:
			if ctx.Err() == nil || errors.Is(ctx.Err(), context.Canceled) {
				return fmt.Errorf("the VM exited before its agent answered")
			}
		default:
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("guest agent did not answer within %s: %w", m.cfg.ReadyTimeout, err)
		}
		return fmt.Errorf("guest agent: %w", err)
	}
	return nil
}

// sshAddr is where the guest's SSH (agent) listens, seen from the host: a
// forwarded loopback port when the network gave one (user mode), else port
// 22 at the guest's address.
func sshAddr(vm model.VMRecord) string {
	if vm.SSHPort > 0 {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(vm.SSHPort))
	}
	return net.JoinHostPort(vm.GuestIP, "22")
}

// initMode is the image's own init when the image asks for it, else banger's.
func initMode(img model.Image) string {
	if img.Init == bootcfg.InitImage {
		return bootcfg.InitImage
	}
	return bootcfg.InitBanger
}
