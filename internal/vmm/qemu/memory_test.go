package qemu

import (
	"strings"
	"testing"
)

// memObject returns the memory-backend-file -object value of argv.
func memObject(t *testing.T, argv []string) string {
	t.Helper()
	for i, a := range argv {
		if a == "-object" && i+1 < len(argv) && strings.HasPrefix(argv[i+1], "memory-backend-file,") {
			return argv[i+1]
		}
	}
	t.Fatalf("no memory-backend-file object in %q", argv)
	return ""
}

// A clone's RAM maps the snapshot's file privately and must stay writable
// guest RAM: QEMU 7.2's readonly=on turns it into a ROM the guest cannot
// write (the restored guest crashed at once).
func TestMemFileObject(t *testing.T) {
	base := NewCommand("/usr/bin/qemu-system-x86_64").WithMemoryMiB(256)
	tests := []struct {
		name   string
		shared bool
		want   string
	}{
		{"running vm", true, "memory-backend-file,id=ram0,size=256M,mem-path=/m/a.ram,share=on"},
		{"clone", false, "memory-backend-file,id=ram0,size=256M,mem-path=/m/a.ram,share=off"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := memObject(t, base.WithMemFile("/m/a.ram", tt.shared).WithIncoming(!tt.shared).Build())
			if got != tt.want {
				t.Fatalf("ram object %q, want %q", got, tt.want)
			}
			if strings.Contains(got, "readonly") {
				t.Fatalf("ram object %q is read-only guest memory", got)
			}
		})
	}
}
