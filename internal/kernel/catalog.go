package kernel

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"banger/internal/api"
)

//go:embed catalog.json
var builtinCatalog []byte

// CatalogFile is the optional file in the kernel store folder whose entries
// add to or override (by name) the built-in catalog.
const CatalogFile = "catalog.json"

// Catalog entry kinds.
const (
	kindDebian = "debian" // Debian kernel package fetched with the host's apt
	kindOCI    = "oci"    // OCI image holding boot/vmlinux and lib/modules
	kindBuild  = "build"  // built here from a Debian linux-source package
)

// catalogEntry is one kernel banger knows how to fetch.
type catalogEntry struct {
	Name          string `json:"name"`
	Kind          string `json:"kind"`
	Distro        string `json:"distro,omitempty"`
	Arch          string `json:"arch,omitempty"`
	KernelVersion string `json:"kernel_version,omitempty"`
	SizeBytes     int64  `json:"size_bytes,omitempty"`
	Description   string `json:"description,omitempty"`
	// SHA256, when set, is the expected digest of the kernel image file.
	SHA256 string `json:"sha256,omitempty"`
	// Package is the apt package: for debian, the metapackage (or a
	// versioned linux-image package); for build, the linux-source package.
	Package string `json:"package,omitempty"`
	// Config names the embedded kernel config (build).
	Config string `json:"config,omitempty"`
	// Ref is the image reference (oci).
	Ref string `json:"ref,omitempty"`
}

type catalogFile struct {
	Entries []catalogEntry `json:"entries"`
}

func (e catalogEntry) validate() error {
	if err := checkName(e.Name); err != nil {
		return err
	}
	if e.SHA256 != "" && (len(e.SHA256) != 64 || strings.Trim(strings.ToLower(e.SHA256), "0123456789abcdef") != "") {
		return fmt.Errorf("entry %s: sha256 must be 64 hex digits", e.Name)
	}
	switch e.Kind {
	case kindDebian:
		if e.Package == "" {
			return fmt.Errorf("entry %s: kind debian needs package", e.Name)
		}
	case kindBuild:
		if e.Package == "" || e.Config == "" {
			return fmt.Errorf("entry %s: kind build needs package and config", e.Name)
		}
		if _, err := configs.ReadFile("configs/" + e.Config); err != nil {
			return fmt.Errorf("entry %s: no embedded config %q", e.Name, e.Config)
		}
	case kindOCI:
		if e.Ref == "" {
			return fmt.Errorf("entry %s: kind oci needs ref", e.Name)
		}
	default:
		return fmt.Errorf("entry %s: unknown kind %q (want debian, oci or build)", e.Name, e.Kind)
	}
	return nil
}

func parseCatalog(data []byte, what string) ([]catalogEntry, error) {
	var f catalogFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("kernel catalog %s: %w", what, err)
	}
	for _, e := range f.Entries {
		if err := e.validate(); err != nil {
			return nil, fmt.Errorf("kernel catalog %s: %w", what, err)
		}
	}
	return f.Entries, nil
}

// catalog returns the built-in entries merged with CatalogFile, by name.
func (s *Service) catalog() (map[string]catalogEntry, error) {
	base, err := parseCatalog(builtinCatalog, "(built in)")
	if err != nil {
		return nil, err
	}
	out := map[string]catalogEntry{}
	for _, e := range base {
		out[e.Name] = e
	}
	file := filepath.Join(s.dir, CatalogFile)
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kernel catalog: %w", err)
	}
	extra, err := parseCatalog(data, file)
	if err != nil {
		return nil, api.Errorf(api.ErrInvalid, "%w", err)
	}
	for _, e := range extra {
		out[e.Name] = e
	}
	return out, nil
}

// lookup returns the catalog entry name, or an api.ErrNotFound error listing
// close names.
func (s *Service) lookup(name string) (catalogEntry, error) {
	cat, err := s.catalog()
	if err != nil {
		return catalogEntry{}, err
	}
	if e, ok := cat[name]; ok {
		return e, nil
	}
	names := make([]string, 0, len(cat))
	for n := range cat {
		names = append(names, n)
	}
	if near := closeNames(name, names); len(near) > 0 {
		return catalogEntry{}, api.Errorf(api.ErrNotFound, "no kernel %q in the catalog; did you mean %s?", name, strings.Join(near, ", "))
	}
	sort.Strings(names)
	return catalogEntry{}, api.Errorf(api.ErrNotFound, "no kernel %q in the catalog (have %s)", name, strings.Join(names, ", "))
}

// Catalog lists the kernels banger knows how to fetch, each marked pulled
// when the store holds a kernel of that name.
func (s *Service) Catalog(ctx context.Context) ([]api.KernelCatalogEntry, error) {
	cat, err := s.catalog()
	if err != nil {
		return nil, err
	}
	have, err := s.store.ListKernels(ctx)
	if err != nil {
		return nil, fmt.Errorf("kernel catalog: %w", err)
	}
	pulled := map[string]bool{}
	for _, k := range have {
		pulled[k.Name] = true
	}
	out := make([]api.KernelCatalogEntry, 0, len(cat))
	for _, e := range cat {
		out = append(out, api.KernelCatalogEntry{
			Name:          e.Name,
			Distro:        e.Distro,
			Arch:          e.Arch,
			KernelVersion: e.KernelVersion,
			SizeBytes:     e.SizeBytes,
			Description:   e.Description,
			Pulled:        pulled[e.Name],
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
