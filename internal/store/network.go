package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"

	"banger/internal/api"
)

// AllocateIP gives vmID the first address of pool not held by another VM. An
// address is never given to two VMs (UNIQUE constraint); a VM that already
// holds one gets it back.
func (s *Store) AllocateIP(ctx context.Context, vmID string, pool []netip.Addr) (netip.Addr, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return netip.Addr{}, err
	}
	defer tx.Rollback()
	var held string
	err = tx.QueryRowContext(ctx, "SELECT addr FROM ip_allocations WHERE vm_id = ?", vmID).Scan(&held)
	if err == nil {
		return netip.ParseAddr(held)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return netip.Addr{}, fmt.Errorf("allocate address: %w", err)
	}
	used := map[string]bool{}
	rows, err := tx.QueryContext(ctx, "SELECT addr FROM ip_allocations")
	if err != nil {
		return netip.Addr{}, fmt.Errorf("allocate address: %w", err)
	}
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			rows.Close()
			return netip.Addr{}, err
		}
		used[a] = true
	}
	rows.Close()
	for _, a := range pool {
		if used[a.String()] {
			continue
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO ip_allocations (addr, vm_id) VALUES (?, ?)", a.String(), vmID); err != nil {
			return netip.Addr{}, fmt.Errorf("allocate address: %w", err)
		}
		return a, tx.Commit()
	}
	return netip.Addr{}, api.Errorf(api.ErrUnavailable, "address pool exhausted: all %d addresses are in use", len(pool))
}

// ReleaseIP frees the address held by vmID (no error when it holds none).
func (s *Store) ReleaseIP(ctx context.Context, vmID string) error {
	_, err := s.db.ExecContext(ctx, "DELETE FROM ip_allocations WHERE vm_id = ?", vmID)
	return err
}

// ListIPs maps VM ids to their addresses.
func (s *Store) ListIPs(ctx context.Context) (map[string]netip.Addr, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT vm_id, addr FROM ip_allocations")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]netip.Addr{}
	for rows.Next() {
		var id, a string
		if err := rows.Scan(&id, &a); err != nil {
			return nil, err
		}
		addr, err := netip.ParseAddr(a)
		if err != nil {
			return nil, err
		}
		out[id] = addr
	}
	return out, rows.Err()
}

// GetSetting reads a daemon setting ("" when unset).
func (s *Store) GetSetting(ctx context.Context, key string) (string, error) {
	var v string
	err := s.db.QueryRowContext(ctx, "SELECT value FROM settings WHERE key = ?", key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return v, err
}

// PutSetting writes a daemon setting.
func (s *Store) PutSetting(ctx context.Context, key, value string) error {
	_, err := s.db.ExecContext(ctx, "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", key, value)
	return err
}
