package initsys

import (
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestParseModinfoDepends(t *testing.T) {
	got, err := parseModinfoDepends([]byte("license=GPL\x00depends=virtio_ring,virtio,net_failover\x00retpoline=Y\x00"))
	if err != nil || !slices.Equal(got, []string{"virtio_ring", "virtio", "net_failover"}) {
		t.Fatalf("got %v, %v", got, err)
	}
	if got, err := parseModinfoDepends([]byte("name=virtio_ring\x00depends=\x00")); err != nil || len(got) != 0 {
		t.Fatalf("empty depends: got %v, %v", got, err)
	}
	if _, err := parseModinfoDepends([]byte("name=x\x00")); err == nil {
		t.Fatal("no depends= entry: want an error")
	}
}

func TestPlanModules(t *testing.T) {
	mods := []string{"m/virtio_ring.ko", "m/virtio.ko", "m/virtio_mmio.ko", "m/virtio_blk.ko",
		"m/failover.ko", "m/net_failover.ko", "m/virtio_net.ko", "m/overlay.ko", "m/odd-one.ko.xz", "m/last.ko"}
	deps := map[string][]string{
		"virtio_ring.ko": {}, "virtio.ko": {"virtio_ring"}, "virtio_mmio.ko": {"virtio", "virtio_ring"},
		"virtio_blk.ko": {"virtio", "virtio_ring"}, "failover.ko": {}, "net_failover.ko": {"failover"},
		"virtio_net.ko": {"virtio_ring", "virtio", "net_failover"}, "overlay.ko": {},
		"last.ko": {"odd_one", "crc32c"}, // crc32c: built in, not listed
	}
	depsOf := func(p string) ([]string, error) {
		d, ok := deps[filepath.Base(p)]
		if !ok {
			return nil, errors.New("unreadable")
		}
		return d, nil
	}
	jobs := planModules("/r", mods, depsOf)
	want := [][]int{
		nil,                      // virtio_ring
		{0},                      // virtio
		{1, 0},                   // virtio_mmio
		{1, 2, 0},                // virtio_blk: virtio, its transport, virtio_ring
		nil,                      // failover
		{4},                      // net_failover
		{0, 1, 2, 5},             // virtio_net
		nil,                      // overlay
		{0, 1, 2, 3, 4, 5, 6, 7}, // odd-one: unreadable, waits for all before it
		{8},                      // last: odd-one (odd_one), crc32c ignored
	}
	for i, j := range jobs {
		if j.path != filepath.Join("/r", mods[i]) || !slices.Equal(j.deps, want[i]) {
			t.Errorf("job %d (%s): deps %v, want %v", i, mods[i], j.deps, want[i])
		}
	}
}

func TestRunModulesOrderAndParallel(t *testing.T) {
	// a and b are independent and must be in flight together; c needs both.
	jobs := []modJob{{path: "a"}, {path: "b"}, {path: "c", deps: []int{0, 1}}}
	var mu sync.Mutex
	var finished []string
	both := make(chan struct{})
	var arrived sync.WaitGroup
	arrived.Add(2)
	go func() { arrived.Wait(); close(both) }()
	load := func(p string) error {
		if p != "c" {
			arrived.Done()
			select {
			case <-both:
			case <-time.After(5 * time.Second):
				return errors.New("independent modules were not loaded in parallel")
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if p == "c" && len(finished) != 2 {
			return errors.New("c loaded before its dependencies")
		}
		finished = append(finished, p)
		if p == "b" {
			return errors.New("b failed")
		}
		return nil
	}
	errs, _ := runModules(jobs, load)
	if errs[0] != nil || errs[2] != nil || errs[1] == nil || errs[1].Error() != "b failed" {
		t.Fatalf("errors %v", errs)
	}
}
