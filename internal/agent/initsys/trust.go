package initsys

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Where the VM's CA certificates go (only when the boot config has some).
const (
	CACertPath   = "/run/banger/ca.crt"        // the VM's CA certificates
	CABundlePath = "/run/banger/ca-bundle.crt" // the system bundle followed by them
	// Where the distributions' tools (update-ca-certificates,
	// update-ca-trust) pick up local CAs.
	debianLocalCA = "usr/local/share/ca-certificates/banger-vm.crt"
	fedoraLocalCA = "etc/pki/ca-trust/source/anchors/banger-vm.crt"
)

// localCAFiles get the CA when their folder exists.
var localCAFiles = []string{debianLocalCA, fedoraLocalCA}

// trustStores are the system CA bundles of the common distributions (paths
// relative to the root). Each one present gets the VM's CA appended; the
// first one read is the base of CABundlePath.
var trustStores = []string{
	"etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Alpine, Arch
	"etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL and derivatives
	"etc/ssl/cert.pem",                  // Alpine, Arch (often a link to the first)
	"etc/ssl/ca-bundle.pem",             // openSUSE
}

// maxTrustStore bounds the size of a trust store banger rewrites.
const maxTrustStore = 16 << 20

// Markers around the block banger appends to a trust store.
const (
	trustBegin = "# BEGIN banger VM CA (added at boot)\n"
	trustEnd   = "# END banger VM CA\n"
)

// installTrust makes the sessions and the image trust the VM's CA; a
// failure is logged (TLS to hosts with secrets then fails in the guest).
// Without CA certificates it removes what an earlier boot installed.
func installTrust(caCerts []string, log *slog.Logger) {
	if len(caCerts) == 0 {
		if stores, err := RemoveTrust("/"); err != nil {
			log.Warn("ca certificates: remove the old VM CA", "err", err)
		} else if len(stores) > 0 {
			log.Info("old VM CA removed", "stores", stores)
		}
		return
	}
	stores, err := InstallTrust("/", caCerts)
	if err != nil {
		log.Error("ca certificates", "err", err)
		return
	}
	log.Info("ca certificates installed", "stores", stores, "bundle", CABundlePath)
}

// TrustEnv is what points a session's TLS clients at the VM's CA, when
// InstallTrust wrote its files under root.
func TrustEnv(root string) []string {
	for _, p := range []string{CACertPath, CABundlePath} {
		if fi, err := os.Lstat(filepath.Join(root, p)); err != nil || !fi.Mode().IsRegular() {
			return nil
		}
	}
	return []string{
		"SSL_CERT_FILE=" + CABundlePath,
		"REQUESTS_CA_BUNDLE=" + CABundlePath,
		"NODE_EXTRA_CA_CERTS=" + CACertPath,
	}
}

// withTrustEnv is env followed by TrustEnv("/").
func withTrustEnv(env []string) []string {
	return append(slices.Clone(env), TrustEnv("/")...)
}

// InstallTrust writes the CA certificates (PEM) to CACertPath, the first
// system bundle found plus them to CABundlePath, and appends them to each
// trust store present under root (the overlay: the image itself is never
// changed), once: a block added at an earlier boot is replaced. The
// distribution's local CA folder, when there is one, gets them too, so
// that they survive the image regenerating its bundle. Symlinks in the
// stores' paths are followed as if root were "/", never out of it. It
// returns the stores changed or already up to date.
func InstallTrust(root string, caCerts []string) ([]string, error) {
	var pems strings.Builder
	for _, c := range caCerts {
		pems.WriteString(strings.TrimSpace(c) + "\n")
	}
	system, stores, err := updateStores(root, pems.String())
	errs := []error{err}
	for _, local := range localCAFiles {
		if dir, err := openInRoot(root, filepath.Dir(local), unix.O_RDONLY|unix.O_DIRECTORY, 0); err == nil {
			dir.Close()
			if err := writeInRoot(root, local, []byte(pems.String())); err != nil {
				errs = append(errs, fmt.Errorf("/%s: %w", local, err))
			}
		}
	}
	if err := os.MkdirAll(filepath.Join(root, RunDir), 0o755); err != nil {
		errs = append(errs, err)
	} else {
		if err := replaceFile(filepath.Join(root, CACertPath), pems.String(), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", CACertPath, err))
		}
		bundle := appendBlock(system, trustBegin+pems.String()+trustEnd)
		if err := replaceFile(filepath.Join(root, CABundlePath), string(bundle), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", CABundlePath, err))
		}
	}
	return stores, errors.Join(errs...)
}

// RemoveTrust undoes InstallTrust in the image's trust stores under root,
// for a VM that no longer has a CA. To keep boots without secrets cheap it
// only looks at the stores when a local CA file shows an earlier install.
func RemoveTrust(root string) ([]string, error) {
	var errs []error
	found := false
	for _, local := range localCAFiles {
		f, err := openInRoot(root, local, unix.O_PATH|unix.O_NOFOLLOW, 0)
		if err != nil {
			continue
		}
		f.Close()
		found = true
		if err := removeInRoot(root, local); err != nil {
			errs = append(errs, fmt.Errorf("/%s: %w", local, err))
		}
	}
	if !found {
		return nil, nil
	}
	_, stores, err := updateStores(root, "")
	return stores, errors.Join(append(errs, err)...)
}

// updateStores makes each trust store under root end with one block of
// pems (none when pems is ""), leaving out earlier blocks and pems that
// are already in the store. It returns the first store's content without
// banger's block, and the stores it changed (when pems is "") or that now
// hold pems.
func updateStores(root, pems string) (system []byte, stores []string, err error) {
	block := ""
	if pems != "" {
		block = trustBegin + pems + trustEnd
	}
	var errs []error
	for _, store := range trustStores {
		old, err := readInRoot(root, store)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("trust store /%s: %w", store, err))
			}
			continue
		}
		base := stripTrustBlock(old)
		if system == nil {
			system = base
		}
		updated := base
		if block != "" && !bytes.Contains(base, []byte(strings.TrimSpace(pems))) {
			updated = appendBlock(base, block)
		}
		if bytes.Equal(updated, old) {
			if block != "" {
				stores = append(stores, "/"+store)
			}
			continue
		}
		if err := rewriteInRoot(root, store, old, updated); err != nil {
			errs = append(errs, fmt.Errorf("trust store /%s: %w", store, err))
			continue
		}
		stores = append(stores, "/"+store)
	}
	return system, stores, errors.Join(errs...)
}

// removeInRoot removes the file rel under root (not following a symlink
// at rel; its folder is resolved as by openInRoot).
func removeInRoot(root, rel string) error {
	dir, err := openInRoot(root, filepath.Dir(rel), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer dir.Close()
	return unix.Unlinkat(int(dir.Fd()), filepath.Base(rel), 0)
}

// appendBlock returns base (ending in a newline when not empty) then block.
func appendBlock(base []byte, block string) []byte {
	out := bytes.Clone(base)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return append(out, block...)
}

// stripTrustBlock returns data without the blocks banger appended.
func stripTrustBlock(data []byte) []byte {
	out := data
	for {
		i := bytes.Index(out, []byte(trustBegin))
		if i < 0 {
			return out
		}
		j := bytes.Index(out[i:], []byte(trustEnd))
		if j < 0 {
			return out[:i]
		}
		out = append(bytes.Clone(out[:i]), out[i+j+len(trustEnd):]...)
	}
}

// readInRoot reads the regular file rel under root (see openInRoot).
func readInRoot(root, rel string) ([]byte, error) {
	f, err := openInRoot(root, rel, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	if fi.Size() > maxTrustStore {
		return nil, fmt.Errorf("larger than %d bytes", maxTrustStore)
	}
	return io.ReadAll(io.LimitReader(f, maxTrustStore+1))
}

// rewriteInRoot replaces the content of rel under root, old, by updated:
// in place, keeping the file's owner, mode and links; an append when
// updated extends old.
func rewriteInRoot(root, rel string, old, updated []byte) error {
	f, err := openInRoot(root, rel, unix.O_WRONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Size() != int64(len(old)) {
		return errors.New("changed while being updated")
	}
	off := 0
	if bytes.HasPrefix(updated, old) {
		off = len(old)
	} else if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt(updated[off:], int64(off)); err != nil {
		return err
	}
	return f.Close()
}

// writeInRoot creates or replaces the content of the regular file rel
// under root (0644 when created); a symlink there is refused.
func writeInRoot(root, rel string, data []byte) error {
	if old, err := readInRoot(root, rel); err == nil && bytes.Equal(old, data) {
		return nil
	}
	f, err := openInRoot(root, rel, unix.O_WRONLY|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return errors.New("not a regular file")
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Close()
}

// openInRoot opens rel as if root were "/": symlinks are followed but
// resolve inside root, never out of it (openat2 RESOLVE_IN_ROOT). Kernels
// without openat2 get a walk that follows no symlink at all.
func openInRoot(root, rel string, flags int, mode uint32) (*os.File, error) {
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(dir)
	how := &unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Mode:    uint64(mode),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	fd, err := openat2(dir, rel, how)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		fd, err = openNoSymlinks(dir, rel, flags, mode)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: "/" + rel, Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(root, rel)), nil
}

// openat2 is unix.Openat2; tests replace it to take the fallback.
var openat2 = unix.Openat2

// openNoSymlinks opens rel below dir one component at a time, refusing
// symlinks (ELOOP).
func openNoSymlinks(dir int, rel string, flags int, mode uint32) (int, error) {
	parts := strings.Split(strings.TrimPrefix(filepath.Clean("/"+rel), "/"), "/")
	cur, err := unix.Dup(dir)
	if err != nil {
		return -1, err
	}
	for _, p := range parts[:len(parts)-1] {
		next, err := unix.Openat(cur, p, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(cur)
		if err != nil {
			return -1, err
		}
		cur = next
	}
	defer unix.Close(cur)
	return unix.Openat(cur, parts[len(parts)-1], flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
}
