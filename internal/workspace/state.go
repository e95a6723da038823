package workspace

import (
	"bufio"
	"compress/zlib"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"banger/internal/agent/proto"
	"banger/internal/api"
	"banger/internal/iox"
)

// Layout of a VM's workspace state folder:
//
//	STATEDIR/<sha256 of guest path>/record.json   the record below
//	STATEDIR/<sha256 of guest path>/objects/      objects of the prepare state
//	                                              not in the source repository
//	STATEDIR/<sha256 of guest path>/exclude       repository-wide ignore rules
//	                                              at prepare time (ignore.go)
const (
	recordFile  = "record.json"
	objectsDir  = "objects"
	excludeFile = "exclude"
)

// record is what prepare remembers on the host about one workspace.
type record struct {
	VMName           string    `json:"vm_name"`
	SourcePath       string    `json:"source_path"`
	GuestPath        string    `json:"guest_path"`
	BaseCommit       string    `json:"base_commit"`
	PrepareTree      string    `json:"prepare_tree"`
	Branch           string    `json:"branch,omitempty"`
	Mode             string    `json:"mode"`
	IncludeUntracked bool      `json:"include_untracked"`
	ObjectFormat     string    `json:"object_format"`
	Alternates       []string  `json:"alternates"`
	FileCount        int       `json:"file_count"`
	Bytes            int64     `json:"bytes"`
	PreparedAt       time.Time `json:"prepared_at"`
	// FileMtime is the modification time (Unix nanoseconds) prepare gave
	// every file, and GuestDone the guest clock once the extraction was
	// done (proto.Extracted.DoneUnixNano): export asks the guest to leave
	// out the content of files still as prepare left them
	// (proto.Unchanged). Zero in records of earlier versions.
	FileMtime int64 `json:"file_mtime,omitempty"`
	GuestDone int64 `json:"guest_done,omitempty"`
}

// unchanged is what export asks the guest to leave out, or nil.
func (r record) unchanged() *proto.Unchanged {
	if r.FileMtime == 0 || r.GuestDone == 0 {
		return nil
	}
	return &proto.Unchanged{MtimeUnixNano: r.FileMtime, CtimeUnixNano: r.GuestDone}
}

func stateID(guestPath string) string {
	sum := sha256.Sum256([]byte(guestPath))
	return hex.EncodeToString(sum[:])
}

// stageState writes rec, the ignore rules and the daemon's packs into a new folder inside
// stateDir; commitState moves it into place.
func stageState(stateDir string, rec record, packs []string, excludes []byte) (string, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return "", fmt.Errorf("make workspace state dir: %w", err)
	}
	staged, err := os.MkdirTemp(stateDir, ".new-")
	if err != nil {
		return "", fmt.Errorf("make workspace state dir: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(staged)
		}
	}()
	if err := savePacks(packs, staged); err != nil {
		return "", fmt.Errorf("save workspace objects: %w", err)
	}
	if err := os.WriteFile(filepath.Join(staged, excludeFile), excludes, 0o600); err != nil {
		return "", fmt.Errorf("save workspace ignore rules: %w", err)
	}
	if err := writeRecord(staged, rec); err != nil {
		return "", err
	}
	ok = true
	return staged, nil
}

// writeRecord writes rec into the state folder dir.
func writeRecord(dir string, rec record) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, recordFile), data, 0o600); err != nil {
		return fmt.Errorf("save workspace record: %w", err)
	}
	return nil
}

// commitState replaces the state of guestPath with the staged folder.
func commitState(stateDir, staged, guestPath string) error {
	final := filepath.Join(stateDir, stateID(guestPath))
	if err := dropState(stateDir, guestPath); err != nil {
		return err
	}
	if err := os.Rename(staged, final); err != nil {
		return fmt.Errorf("save workspace state: %w", err)
	}
	return nil
}

// dropState removes the state of guestPath, if any.
func dropState(stateDir, guestPath string) error {
	final := filepath.Join(stateDir, stateID(guestPath))
	if _, err := os.Lstat(final); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	old := final + ".old"
	os.RemoveAll(old)
	if err := os.Rename(final, old); err != nil {
		return fmt.Errorf("replace workspace state: %w", err)
	}
	return os.RemoveAll(old)
}

// loadState reads the record of guestPath, or of the only workspace when
// guestPath is empty, and returns it with its folder.
func loadState(stateDir, guestPath string) (record, string, error) {
	if guestPath == "" {
		recs, err := listState(stateDir)
		if err != nil {
			return record{}, "", err
		}
		switch len(recs) {
		case 0:
			return record{}, "", api.Errorf(api.ErrNotFound, "no workspace has been prepared in this vm")
		case 1:
			guestPath = recs[0]
		default:
			return record{}, "", api.Errorf(api.ErrInvalid, "vm has %d workspaces (%s): pass a guest path", len(recs), strings.Join(recs, ", "))
		}
	}
	dir := filepath.Join(stateDir, stateID(guestPath))
	data, err := os.ReadFile(filepath.Join(dir, recordFile))
	if errors.Is(err, os.ErrNotExist) {
		return record{}, "", api.Errorf(api.ErrNotFound, "no workspace prepared at %s", guestPath)
	}
	if err != nil {
		return record{}, "", fmt.Errorf("read workspace record: %w", err)
	}
	var rec record
	if err := json.Unmarshal(data, &rec); err != nil {
		return record{}, "", fmt.Errorf("read workspace record %s: %w", dir, err)
	}
	if rec.GuestPath != guestPath {
		return record{}, "", fmt.Errorf("workspace record %s is for %s, not %s", dir, rec.GuestPath, guestPath)
	}
	return rec, dir, nil
}

// listState returns the guest paths of all recorded workspaces, sorted.
func listState(stateDir string) ([]string, error) {
	ents, err := os.ReadDir(stateDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list workspaces: %w", err)
	}
	var paths []string
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || strings.HasSuffix(e.Name(), ".old") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(stateDir, e.Name(), recordFile))
		if err != nil {
			continue
		}
		var rec record
		if json.Unmarshal(data, &rec) == nil && stateID(rec.GuestPath) == e.Name() {
			paths = append(paths, rec.GuestPath)
		}
	}
	slices.Sort(paths)
	return paths, nil
}

// savePacks hard-links (or copies) the packs the daemon wrote into the
// staged state's objects/pack folder.
func savePacks(packs []string, staged string) error {
	dst := filepath.Join(staged, objectsDir, "pack")
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	for _, p := range packs {
		target := filepath.Join(dst, filepath.Base(p))
		if os.Link(p, target) == nil {
			continue
		}
		if err := iox.CopyFile(p, target, 0o444); err != nil {
			return err
		}
	}
	return nil
}

// loadObjects makes the objects of a workspace state (the daemon's own
// files) readable by the caller's git: each pack is streamed to git
// index-pack --stdin running as the caller; loose objects (kept by earlier
// versions) are packed first.
func (st *store) loadObjects(ctx context.Context, dir, objects string) error {
	packs, err := filepath.Glob(filepath.Join(objects, "pack", "*.pack"))
	if err != nil {
		return err
	}
	for _, p := range packs {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		err = st.indexPack(ctx, dir, st.env(""), f)
		f.Close()
		if err != nil {
			return err
		}
	}
	loose, err := filepath.Glob(filepath.Join(objects, "[0-9a-f][0-9a-f]", "*"))
	if err != nil || len(loose) == 0 {
		return err
	}
	w := newObjectWriter(st, dir)
	defer w.close()
	for _, p := range loose {
		oid := filepath.Base(filepath.Dir(p)) + filepath.Base(p)
		if !isHex(oid) {
			continue
		}
		if err := addLoose(w, p, oid); err != nil {
			return fmt.Errorf("object %s: %w", oid, err)
		}
	}
	return w.finish(ctx)
}

// addLoose adds the loose object file p to w's pack.
func addLoose(w *objectWriter, p, oid string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := zlib.NewReader(f)
	if err != nil {
		return err
	}
	br := bufio.NewReader(zr)
	hdr, err := br.ReadString(0)
	if err != nil {
		return err
	}
	typName, sizeText, _ := strings.Cut(strings.TrimSuffix(hdr, "\x00"), " ")
	size, err := strconv.ParseInt(sizeText, 10, 64)
	if err != nil {
		return err
	}
	typ, ok := map[string]byte{"commit": 1, "tree": objTree, "blob": objBlob, "tag": 4}[typName]
	if !ok {
		return fmt.Errorf("unknown object type %q", typName)
	}
	if w.pack == nil {
		if w.pack, err = newPackWriter(w.st); err != nil {
			return err
		}
	}
	return w.pack.addReader(typ, oid, size, br)
}
