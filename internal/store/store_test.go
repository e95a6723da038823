package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"banger/internal/api"
	"banger/internal/model"
)

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "banger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMigrateFromEmpty(t *testing.T) {
	s := openTemp(t)
	v, err := s.version(context.Background())
	if err != nil || v != SchemaVersion {
		t.Fatalf("version = %d, %v; want %d", v, err, SchemaVersion)
	}
}

func TestMigrateFromEachEarlierVersion(t *testing.T) {
	ctx := context.Background()
	for from := 1; from < SchemaVersion; from++ {
		path := filepath.Join(t.TempDir(), "banger.db")
		db, err := sql.Open("sqlite", "file:"+path)
		if err != nil {
			t.Fatal(err)
		}
		old := &Store{db: db, path: path}
		if err := old.migrateTo(ctx, from); err != nil {
			t.Fatal(err)
		}
		// A record written by the old schema survives the upgrade.
		if _, err := db.Exec(`INSERT INTO kernels (name, data) VALUES ('k1', '{"name":"k1"}')`); err != nil {
			t.Fatal(err)
		}
		db.Close()
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("from version %d: %v", from, err)
		}
		if _, err := s.GetKernel(ctx, "k1"); err != nil {
			t.Fatalf("from version %d: kernel lost: %v", from, err)
		}
		if v, _ := s.version(ctx); v != SchemaVersion {
			t.Fatalf("from version %d: at %d", from, v)
		}
		s.Close()
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "banger.db")
	db, _ := sql.Open("sqlite", "file:"+path)
	if _, err := db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err := Open(context.Background(), path)
	if err == nil || !strings.Contains(err.Error(), "newer") || !strings.Contains(err.Error(), path) {
		t.Fatalf("want newer-schema error naming the file, got %v", err)
	}
}

func TestCorruptFileRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "banger.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("this is not sqlite ", 400)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), path)
	if err == nil || !strings.Contains(err.Error(), "corrupt") || !strings.Contains(err.Error(), path) {
		t.Fatalf("want corrupt error naming the file, got %v", err)
	}
}

func TestLockedDatabaseRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "banger.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	holder, _ := sql.Open("sqlite", "file:"+path)
	defer holder.Close()
	conn, err := holder.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(context.Background(), "ROLLBACK")
	db, _ := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(100)")
	other := &Store{db: db, path: path}
	err = other.check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("want locked error, got %v", err)
	}
}

func TestRecordsAndConstraints(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	if err := s.InsertKernel(ctx, api.KernelEntry{Name: "k"}); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertKernel(ctx, api.KernelEntry{Name: "k"}); !errors.Is(err, api.ErrExists) {
		t.Fatalf("duplicate kernel: %v", err)
	}
	img := model.Image{ID: "img1", Name: "deb", KernelRef: "k", CreatedAt: time.Now()}
	if err := s.InsertImage(ctx, img); err != nil {
		t.Fatal(err)
	}
	vm := model.VMRecord{ID: "abcdef123456", Name: "t1", ImageID: "img1", KernelName: "k",
		Forwards: []model.Forward{{HostPort: 8080, GuestPort: 80}}}
	if err := s.InsertVM(ctx, vm); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetVM(ctx, vm.ID); got.Forwards != nil {
		t.Fatalf("forwards were stored with the record: %+v (reads fill them in)", got.Forwards)
	}
	if err := s.UpdateVM(ctx, vm); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetVM(ctx, vm.ID); got.Forwards != nil {
		t.Fatalf("forwards were stored by an update: %+v", got.Forwards)
	}
	images, vms, err := s.KernelUsers(ctx, "k")
	if err != nil || len(images) != 1 || images[0] != "deb" || len(vms) != 1 || vms[0] != "t1" {
		t.Fatalf("kernel users = %v %v %v", images, vms, err)
	}
	if got, err := s.GetVM(ctx, "abcd"); err != nil || got.Name != "t1" {
		t.Fatalf("prefix lookup = %v %v", got.Name, err)
	}
	if _, err := s.GetVM(ctx, "nope"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("missing vm: %v", err)
	}
	pool := []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")}
	a1, err := s.AllocateIP(ctx, "vm1", pool)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := s.AllocateIP(ctx, "vm2", pool)
	if err != nil || a1 == a2 {
		t.Fatalf("second allocation %v %v", a2, err)
	}
	if again, _ := s.AllocateIP(ctx, "vm1", pool); again != a1 {
		t.Fatalf("re-allocation changed address: %v != %v", again, a1)
	}
	if _, err := s.AllocateIP(ctx, "vm3", pool); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("exhausted pool: %v", err)
	}
	if err := s.ReleaseIP(ctx, "vm1"); err != nil {
		t.Fatal(err)
	}
	if a3, err := s.AllocateIP(ctx, "vm3", pool); err != nil || a3 != a1 {
		t.Fatalf("freed address not reused: %v %v", a3, err)
	}
	op := api.VMCreateOperation{ID: "op1", VMID: vm.ID, Stage: "boot", UpdatedAt: time.Now()}
	if err := s.PutOperation(ctx, op); err != nil {
		t.Fatal(err)
	}
	if ops, _ := s.UnfinishedOperations(ctx); len(ops) != 1 {
		t.Fatalf("unfinished = %d", len(ops))
	}
	op.Done = true
	s.PutOperation(ctx, op)
	if ops, _ := s.UnfinishedOperations(ctx); len(ops) != 0 {
		t.Fatalf("unfinished after done = %d", len(ops))
	}
}

// Concurrent allocations must wait for each other (busy timeout) rather than
// fail with SQLITE_BUSY on the read-to-write lock upgrade.
func TestConcurrentAllocations(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	var pool []netip.Addr
	for i := 2; i < 60; i++ {
		pool = append(pool, netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}))
	}
	errs := make(chan error, 40)
	for i := 0; i < 40; i++ {
		go func(i int) {
			_, err := s.AllocateIP(ctx, fmt.Sprintf("vm%d", i), pool)
			errs <- err
		}(i)
	}
	for i := 0; i < 40; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
	}
	ips, err := s.ListIPs(ctx)
	if err != nil || len(ips) != 40 {
		t.Fatalf("allocations = %d, %v", len(ips), err)
	}
	seen := map[netip.Addr]bool{}
	for _, a := range ips {
		if seen[a] {
			t.Fatalf("address %s given twice", a)
		}
		seen[a] = true
	}
}

func TestSecretsUniquePerOwnerAndBindingsKept(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	a := model.Secret{ID: "s1", Name: "gh", OwnerUID: 1000, Hosts: []string{"api.github.com"}}
	if err := s.InsertSecret(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertSecret(ctx, model.Secret{ID: "s2", Name: "gh", OwnerUID: 1000}); !errors.Is(err, api.ErrExists) {
		t.Fatalf("same owner, same name: %v", err)
	}
	if err := s.InsertSecret(ctx, model.Secret{ID: "s3", Name: "gh", OwnerUID: 1001}); err != nil {
		t.Fatalf("other owner, same name: %v", err)
	}
	got, err := s.GetSecret(ctx, 1000, "gh")
	if err != nil || got.ID != "s1" || got.Hosts[0] != "api.github.com" {
		t.Fatalf("get = %+v, %v", got, err)
	}
	if _, err := s.GetSecret(ctx, 1002, "gh"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("other owner's: %v", err)
	}
	if named, _ := s.SecretsNamed(ctx, "gh"); len(named) != 2 {
		t.Fatalf("named = %+v", named)
	}
	if err := s.DeleteSecret(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if all, _ := s.ListSecrets(ctx); len(all) != 1 || all[0].ID != "s3" {
		t.Fatalf("list = %+v", all)
	}
	vm := model.VMRecord{ID: "v1", Name: "v1", Secrets: []model.SecretBinding{{Name: "gh", Env: "GH", Placeholder: "banger-secret-gh-00", SecretID: "s3"}}}
	if err := s.InsertVM(ctx, vm); err != nil {
		t.Fatal(err)
	}
	back, err := s.GetVM(ctx, "v1")
	if err != nil || len(back.Secrets) != 1 || back.Secrets[0].Placeholder != "banger-secret-gh-00" {
		t.Fatalf("vm bindings = %+v, %v", back.Secrets, err)
	}
}
