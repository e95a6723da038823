package daemon

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"banger/internal/api"
)

func noProgress(api.ProgressEvent) {}

// A provisional choice (no kernel at start) is decided again when a kernel
// is stored: the probe runs then, the backend is switched when the answer
// differs, and later kernels change nothing.
func TestAccelDecidedAgainWhenAKernelIsStored(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name     string
		nested   bool
		probeErr error
		wantKVM  bool
		switched []bool
	}{
		{"nested host where kvm boots", true, nil, true, []bool{true}},
		{"nested host where kvm hangs", true, errors.New("no marker in 15s"), false, nil},
		{"bare metal where kvm fails", false, errors.New("no marker in 15s"), false, []bool{false}},
		{"bare metal where kvm boots", false, nil, true, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeProber{key: "", nested: c.nested, probeErr: c.probeErr}
			decide := func(ctx context.Context) (accelChoice, error) { return decideAccel(ctx, AccelAuto, f.prober("")) }
			first, err := decide(ctx)
			if err != nil || !first.Provisional || f.probes != 0 {
				t.Fatalf("without a kernel: %+v, %v, %d probes; want provisional and no probe", first, err, f.probes)
			}
			var switched []bool
			a := &accelState{choice: first, decide: decide, log: slog.New(slog.DiscardHandler),
				use: func(kvm bool) error { switched = append(switched, kvm); return nil }}

			f.kernel = "/k/vmlinuz"
			var said []string
			a.kernelStored(ctx, func(ev api.ProgressEvent) { said = append(said, ev.Phase+": "+ev.Detail) })
			name, why := a.Get()
			if len(said) != 2 || !strings.Contains(said[0], "probing kvm") || said[1] != "accelerator: "+name+": "+why {
				t.Errorf("the storing request was told %q; want the probe announced, then %s: %s", said, name, why)
			}
			if f.probes != 1 || (name == AccelKVM) != c.wantKVM || !strings.Contains(why, "kvm probe") {
				t.Fatalf("after a kernel: %s (%s), %d probes; want kvm=%v from one probe", name, why, f.probes, c.wantKVM)
			}
			if len(switched) != len(c.switched) || (len(switched) == 1 && switched[0] != c.switched[0]) {
				t.Fatalf("backend switched %v, want %v", switched, c.switched)
			}
			said = nil
			a.kernelStored(ctx, func(ev api.ProgressEvent) { said = append(said, ev.Detail) })
			if f.probes != 1 || len(switched) != len(c.switched) || len(said) != 0 {
				t.Fatalf("a second kernel probed again (%d probes) or switched again (%v)", f.probes, switched)
			}
		})
	}
}

// A backend that cannot switch keeps its accelerator, and says so.
func TestAccelSwitchRefused(t *testing.T) {
	ctx := context.Background()
	f := &fakeProber{nested: true}
	decide := func(ctx context.Context) (accelChoice, error) { return decideAccel(ctx, AccelAuto, f.prober("")) }
	first, _ := decide(ctx)
	a := &accelState{choice: first, decide: decide, log: slog.New(slog.DiscardHandler),
		use: func(bool) error { return errors.New("/dev/kvm: permission denied") }}
	f.kernel = "/k/vmlinuz"
	a.kernelStored(ctx, noProgress)
	if name, why := a.Get(); name != AccelTCG || !strings.Contains(why, "could not switch") || !strings.Contains(why, "permission denied") {
		t.Fatalf("refused switch: %s (%s)", name, why)
	}
}

// Explicit --accel and a probed choice are final: storing a kernel probes
// nothing.
func TestAccelFinalChoiceNotRedone(t *testing.T) {
	ctx := context.Background()
	f := &fakeProber{kernel: "/k/vmlinuz"}
	for _, mode := range []string{AccelTCG, AccelKVM, AccelAuto} {
		decide := func(ctx context.Context) (accelChoice, error) { return decideAccel(ctx, mode, f.prober("")) }
		first, err := decide(ctx)
		if err != nil || first.Provisional {
			t.Fatalf("%s: %+v, %v", mode, first, err)
		}
		probes := f.probes
		a := &accelState{choice: first, decide: decide, log: slog.New(slog.DiscardHandler),
			use: func(bool) error { t.Fatalf("%s: switched", mode); return nil }}
		a.kernelStored(ctx, noProgress)
		if f.probes != probes {
			t.Fatalf("%s: probed again after a kernel was stored", mode)
		}
	}
}

// ReasonFor gives the reason only for the backend's name now: a VM that
// started before the choice changed gets none rather than the new one.
func TestAccelReasonForTheBackendNow(t *testing.T) {
	ctx := context.Background()
	f := &fakeProber{nested: true}
	decide := func(ctx context.Context) (accelChoice, error) { return decideAccel(ctx, AccelAuto, f.prober("")) }
	first, _ := decide(ctx)
	backend := "qemu-tcg"
	a := &accelState{choice: first, decide: decide, log: slog.New(slog.DiscardHandler),
		name: func() string { return backend },
		use: func(kvm bool) error {
			if kvm {
				backend = "qemu-kvm"
			}
			return nil
		}}
	if got := a.ReasonFor("qemu-tcg"); !strings.Contains(got, "no kernel to probe kvm with yet") {
		t.Fatalf("before a kernel: %q", got)
	}
	f.kernel = "/k/vmlinuz"
	a.kernelStored(ctx, noProgress)
	if got := a.ReasonFor("qemu-kvm"); !strings.Contains(got, "kvm probe") {
		t.Fatalf("after the switch, a kvm start: %q", got)
	}
	if got := a.ReasonFor("qemu-tcg"); got != "" {
		t.Fatalf("a tcg start from before the switch got a reason: %q", got)
	}
}
