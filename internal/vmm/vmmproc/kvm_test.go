package vmmproc

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckKVMRejectsNonKVM(t *testing.T) {
	if err := CheckKVM(filepath.Join(t.TempDir(), "kvm")); err == nil {
		t.Error("missing device accepted")
	}
	if err := CheckKVM("/dev/null"); err == nil || !strings.Contains(err.Error(), "KVM_GET_API_VERSION") {
		t.Errorf("/dev/null: err = %v, want the ioctl to fail", err)
	}
}
