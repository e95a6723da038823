package store

import (
	"context"
	"fmt"
)

// migrations[i] takes the schema from version i to i+1. Never edit a released
// step; append a new one.
var migrations = []string{
	// 1: the records.
	`CREATE TABLE kernels (name TEXT PRIMARY KEY, data TEXT NOT NULL);
	 CREATE TABLE images (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,
	   kernel_ref TEXT NOT NULL DEFAULT '', data TEXT NOT NULL);
	 CREATE TABLE vms (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, image_id TEXT NOT NULL,
	   kernel_name TEXT NOT NULL DEFAULT '', data TEXT NOT NULL);
	 CREATE TABLE operations (id TEXT PRIMARY KEY, vm_id TEXT NOT NULL DEFAULT '',
	   done INTEGER NOT NULL DEFAULT 0, updated_at TEXT NOT NULL, data TEXT NOT NULL);`,
	// 2: networking and daemon settings.
	`CREATE TABLE ip_allocations (addr TEXT PRIMARY KEY, vm_id TEXT NOT NULL UNIQUE);
	 CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);`,
	// 3: snapshots (vm snapshot, vm fork).
	`CREATE TABLE snapshots (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, data TEXT NOT NULL);`,
	// 4: secrets (descriptions only: values live in the vault, STATE/secrets);
	// a VM's bindings are in its record.
	`CREATE TABLE secrets (id TEXT PRIMARY KEY, owner_uid INTEGER NOT NULL, name TEXT NOT NULL,
	   data TEXT NOT NULL, UNIQUE (owner_uid, name));`,
}

// SchemaVersion is the schema version this build writes.
var SchemaVersion = len(migrations)

func (s *Store) version(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v)
	return v, err
}

func (s *Store) migrate(ctx context.Context) error {
	return s.migrateTo(ctx, len(migrations))
}

func (s *Store) migrateTo(ctx context.Context, target int) error {
	cur, err := s.version(ctx)
	if err != nil {
		return fmt.Errorf("read schema version of %s: %w", s.path, err)
	}
	if cur > len(migrations) {
		return fmt.Errorf("database %s has schema version %d, newer than this bangerd understands (%d): upgrade banger, or move the file away to start empty", s.path, cur, len(migrations))
	}
	for v := cur; v < target; v++ {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migrate %s to version %d: %w", s.path, v+1, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate %s to version %d: %w", s.path, v+1, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate %s to version %d: %w", s.path, v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migrate %s to version %d: %w", s.path, v+1, err)
		}
	}
	return nil
}
