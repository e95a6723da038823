package vmm

import (
	"errors"
	"strings"
	"testing"

	"banger/internal/api"
)

// One check serves every backend: what differs is only what the backend's
// capabilities allow.
func TestCheckSpecFollowsCaps(t *testing.T) {
	good := Spec{RunDir: "/run/banger/vm1", Kernel: "/k/vmlinuz", VCPUs: 4, MemoryMiB: 256,
		Disks: []Disk{{Path: "/d/a", Serial: "banger-work"}, {Path: "/d/b"}},
		Net:   &Net{MAC: "02:00:0a:1e:00:02", SSHHostPort: 2222}}
	wide := Caps{UserNet: true, Sockets: []string{"qmp.sock"}}
	if err := CheckSpec(good, wide); err != nil {
		t.Fatalf("good spec rejected: %v", err)
	}
	tests := []struct {
		name string
		caps Caps
		edit func(*Spec)
		want string // "" when the spec must pass
	}{
		{"no user net", Caps{}, func(*Spec) {}, "no user-mode networking"},
		{"tap without user net", Caps{}, func(s *Spec) { s.Net.Tap = "bt0" }, ""},
		{"vcpus over the cap", Caps{UserNet: true, MaxVCPUs: 2}, func(*Spec) {}, "1 to 2 vcpus, got 4"},
		{"vcpus without a cap", wide, func(s *Spec) { s.VCPUs = 1000 }, ""},
		{"disks over the cap", Caps{UserNet: true, MaxDisks: 1}, func(*Spec) {}, "at most 1 disks, got 2"},
		{"socket path", Caps{UserNet: true, Sockets: []string{strings.Repeat("s", 100)}}, func(*Spec) {}, "too long for a unix socket"},
		{"serial characters", wide, func(s *Spec) { s.Disks[0].Serial = "a,b" }, `serial "a,b" must be`},
		{"serial length", wide, func(s *Spec) { s.Disks[0].Serial = strings.Repeat("x", 21) }, "longer than 20"},
		{"several problems", Caps{}, func(s *Spec) { s.Kernel = "" }, "kernel path is empty; this vmm has no user-mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good
			s.Disks = append([]Disk(nil), good.Disks...)
			n := *good.Net
			s.Net = &n
			tt.edit(&s)
			err := CheckSpec(s, tt.caps)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckSpec = %v, want ErrInvalid saying %q", err, tt.want)
			}
		})
	}
}
