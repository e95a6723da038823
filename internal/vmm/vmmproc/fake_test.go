package vmmproc

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"banger/internal/vmm/vmmtest"
)

// envFake, set to "1", makes the test binary stand in for a VMM: it sleeps.
const envFake = "BANGER_FAKE_VMM"

func TestMain(m *testing.M) {
	if os.Getenv(envFake) == "1" {
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fakeVMM runs a sleeping process whose argv looks like a VMM of runDir
// (argv[0] named fakevmm, --sock runDir/vmm.sock), writes its pidfile
// runDir/vmm.pid and returns its pid and the Match that recognises it. The
// process is our child: a reaper goroutine keeps it from lingering as a
// zombie once it exits.
func fakeVMM(t *testing.T, runDir string) (int, Match) {
	t.Helper()
	m := Match{Program: "fakevmm", Flag: "--sock", Path: filepath.Join(runDir, "vmm.sock")}
	cmd := exec.Command(vmmtest.SelfAs(t, "fakevmm"), "--sock", m.Path)
	cmd.Env = append(os.Environ(), envFake+"=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	if err := os.WriteFile(filepath.Join(runDir, "vmm.pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Wait until the child has exec'd, so /proc shows the fake argv.
	for !m.Alive(cmd.Process.Pid) {
		time.Sleep(10 * time.Millisecond)
	}
	return cmd.Process.Pid, m
}
