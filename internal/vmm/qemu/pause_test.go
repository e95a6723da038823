package qemu

import (
	"context"
	"strings"
	"testing"

	"banger/internal/vmm"
)

func statusReply(status string) func(req qmpRequest) []string {
	return func(req qmpRequest) []string {
		switch req.Execute {
		case "query-status":
			return []string{`{"return": {"status": "` + status + `", "running": false}, "id": ` + string(req.ID) + `}`}
		case "query-block":
			return []string{`{"return": [{"device": "d0", "io-status": "ok"}, {"device": "d2", "io-status": "nospace"}], "id": ` + string(req.ID) + `}`}
		}
		return ok(req)
	}
}

func TestIOPauseReason(t *testing.T) {
	for status, want := range map[string]string{"io-error": ReasonDiskFull, "running": "", "paused": ""} {
		c := dial(t, newFakeQMP(t, greeting, statusReply(status)))
		got, err := c.IOPauseReason(context.Background())
		if err != nil || got != want {
			t.Errorf("status %s: reason %q, %v; want %q", status, got, err, want)
		}
	}
	// An I/O error that is not a full disk.
	f := newFakeQMP(t, greeting, func(req qmpRequest) []string {
		switch req.Execute {
		case "query-status":
			return []string{`{"return": {"status": "io-error", "running": false}, "id": ` + string(req.ID) + `}`}
		case "query-block":
			return []string{`{"return": [{"device": "d2", "io-status": "failed"}], "id": ` + string(req.ID) + `}`}
		}
		return ok(req)
	})
	if got, err := dial(t, f).IOPauseReason(context.Background()); err != nil || got != ReasonIOError {
		t.Errorf("failed io-status: %q, %v", got, err)
	}
}

// The disks keep QEMU's default write-error policy (werror=enospc), which
// stops the VM on a full host filesystem instead of failing guest writes.
func TestDisksPauseOnENOSPC(t *testing.T) {
	argv := NewCommand("qemu").WithDisk(vmm.Disk{Path: "/x/work.ext4"}).Build()
	for _, a := range argv {
		if strings.Contains(a, "file=/x/work.ext4") && strings.Contains(a, "werror=") && !strings.Contains(a, "werror=enospc") {
			t.Fatalf("drive %q overrides werror: a full host disk would fail guest writes", a)
		}
	}
}
