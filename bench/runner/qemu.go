package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procArgv reads /proc/PID/cmdline.
func procArgv(pid int) ([]string, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimRight(string(data), "\x00"), "\x00"), nil
}

// qemuFlagsNoValue are the QEMU options banger passes that take no value.
var qemuFlagsNoValue = map[string]bool{"-nodefaults": true, "-no-user-config": true, "-nographic": true,
	"-no-reboot": true, "-daemonize": true, "-enable-kvm": true, "-S": true}

// qemuDropped are options of banger's QEMU a bare run leaves out: -S (banger
// resumes the guest over QMP) and the confinement (-runas, -chroot, -sandbox).
var qemuDropped = map[string]bool{"-daemonize": true, "-S": true, "-netdev": true, "-chardev": true,
	"-serial": true, "-qmp": true, "-pidfile": true, "-monitor": true, "-runas": true, "-chroot": true, "-sandbox": true}

// bareArgv turns the argv of a QEMU that banger started into a bare QEMU
// run of the same machine: same binary, machine, accelerator, CPUs, memory,
// kernel and command line, with the initrd replaced by initrd (when set),
// only the first disk (the image's root filesystem, read-only) when withRoot,
// no network, no QMP, no pidfile, not paused, not confined, serial console
// on stdout.
func bareArgv(argv []string, initrd string, withRoot bool) []string {
	// The portable bundle's loader puts itself and its options before the
	// real binary: keep everything up to the first QEMU option (-M).
	i := 1
	for i < len(argv) && argv[i] != "-M" && argv[i] != "-machine" {
		i++
	}
	if i == len(argv) {
		i = 1
	}
	out := append([]string{}, argv[:i]...)
	for ; i < len(argv); i++ {
		a := argv[i]
		if qemuFlagsNoValue[a] {
			if !qemuDropped[a] {
				out = append(out, a)
			}
			continue
		}
		if i+1 >= len(argv) {
			break
		}
		v := argv[i+1]
		i++
		if qemuDropped[a] {
			continue
		}
		switch a {
		case "-initrd":
			if initrd != "" {
				v = initrd
			}
		case "-drive":
			if !withRoot || !strings.Contains(v, "id=d0,") {
				continue
			}
		case "-device":
			if strings.HasPrefix(v, "virtio-net") || !withRoot || !strings.Contains(v, "drive=d0") {
				continue
			}
		}
		out = append(out, a, v)
	}
	return append(out, "-chardev", "stdio,id=ser0,signal=off", "-serial", "chardev:ser0")
}

// bareVM is a QEMU run by the benchmark.
type bareVM struct {
	cmd  *exec.Cmd
	out  *bufio.Reader
	done chan struct{}
}

// startBare starts argv and waits until its console prints marker; it
// returns the time from exec to the marker.
func startBare(ctx context.Context, argv []string, marker string, timeout time.Duration) (*bareVM, time.Duration, error) {
	r, d, err := startBareLine(ctx, argv, marker, timeout)
	return r.vm, d, err
}

// bareRun is a started bare QEMU and the console line holding the marker.
type bareRun struct {
	vm   *bareVM
	line string
}

// startBareLine is startBare that also returns the marker's line.
func startBareLine(ctx context.Context, argv []string, marker string, timeout time.Duration) (bareRun, time.Duration, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw, err := os.Pipe()
	if err != nil {
		return bareRun{}, 0, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return bareRun{}, 0, fmt.Errorf("start %s: %w", argv[0], err)
	}
	pw.Close()
	vm := &bareVM{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(vm.done) }()
	type hit struct {
		d    time.Duration
		line string
	}
	found := make(chan hit, 1)
	var tail strings.Builder
	go func() {
		r := bufio.NewReader(pr)
		got := false
		for {
			line, err := r.ReadString('\n')
			if !got && strings.Contains(line, marker) {
				got = true
				found <- hit{time.Since(t0), strings.TrimSpace(line)}
			}
			if !got && tail.Len() < 8192 {
				tail.WriteString(line)
			}
			if err != nil {
				pr.Close()
				return
			}
		}
	}()
	select {
	case h := <-found:
		return bareRun{vm, h.line}, h.d, nil
	case <-vm.done:
		time.Sleep(100 * time.Millisecond)
		return bareRun{}, 0, fmt.Errorf("bare qemu exited before %q: %s", marker, lastLines(tail.String(), 8))
	case <-time.After(timeout):
	case <-ctx.Done():
	}
	vm.stop()
	return bareRun{}, 0, fmt.Errorf("bare qemu: no %q within %s: %s", marker, timeout, lastLines(tail.String(), 8))
}

// stop kills the QEMU and waits for it.
func (v *bareVM) stop() {
	if v == nil {
		return
	}
	syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL)
	<-v.done
}

// pid is the QEMU's process id.
func (v *bareVM) pid() int { return v.cmd.Process.Pid }
