package vm

import (
	"errors"
	"strings"
	"testing"

	"banger/internal/api"
	"banger/internal/model"
)

func TestSameFingerprintRefusesAnyDifference(t *testing.T) {
	sn := model.Snapshot{Name: "s", Fingerprint: map[string]string{"qemu_version": "QEMU 7.2", "kernel": strings.Repeat("a", 64), "memory_mib": "256"}}
	if err := sameFingerprint(sn, map[string]string{"qemu_version": "QEMU 7.2", "kernel": strings.Repeat("a", 64), "memory_mib": "256"}); err != nil {
		t.Fatalf("same fingerprint refused: %v", err)
	}
	for _, now := range []map[string]string{
		{"qemu_version": "QEMU 8.0", "kernel": strings.Repeat("a", 64), "memory_mib": "256"},
		{"qemu_version": "QEMU 7.2", "kernel": strings.Repeat("b", 64), "memory_mib": "256"},
		{"qemu_version": "QEMU 7.2", "kernel": strings.Repeat("a", 64)},
		{"qemu_version": "QEMU 7.2", "kernel": strings.Repeat("a", 64), "memory_mib": "256", "initrd": "x"},
	} {
		err := sameFingerprint(sn, now)
		if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), `snapshot "s" cannot be restored here`) || strings.Contains(err.Error(), "\n") {
			t.Errorf("fingerprint %v: %v", now, err)
		}
	}
}
