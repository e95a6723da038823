// Package store keeps banger's state in an embedded SQLite database
// (modernc.org/sqlite, pure Go) in WAL mode. Records are stored as JSON
// documents next to the few columns that queries and constraints need, so
// adding a field to a record needs no migration.
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"banger/internal/api"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Store is the daemon's database.
type Store struct {
	db   *sql.DB
	path string
}

// Open opens (creating if needed) the database at path and migrates it to the
// current schema. Errors say which file and what to do.
func Open(ctx context.Context, path string) (*Store, error) {
	dsn := "file:" + path + "?_txlock=immediate&_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	s := &Store{db: db, path: path}
	if err := s.check(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// check turns the usual ways a database file goes wrong into clear errors.
func (s *Store) check(ctx context.Context) error {
	var res string
	err := s.db.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&res)
	switch {
	case err != nil && isLocked(err):
		return fmt.Errorf("database %s is locked by another process: stop it (another bangerd, or an sqlite3 shell) and retry", s.path)
	case err != nil && isCorrupt(err):
		return fmt.Errorf("database %s is corrupt or not a banger database (%v): move it away (banger starts with an empty state) or restore a backup", s.path, err)
	case err != nil:
		return fmt.Errorf("check database %s: %w", s.path, err)
	case res != "ok":
		return fmt.Errorf("database %s failed its integrity check (%s): move it away or restore a backup", s.path, res)
	}
	return nil
}

func isLocked(err error) bool {
	m := err.Error()
	return strings.Contains(m, "database is locked") || strings.Contains(m, "SQLITE_BUSY")
}

func isCorrupt(err error) bool {
	m := err.Error()
	return strings.Contains(m, "not a database") || strings.Contains(m, "malformed") || strings.Contains(m, "SQLITE_CORRUPT") || strings.Contains(m, "SQLITE_NOTADB")
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Path is the database file.
func (s *Store) Path() string { return s.path }

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

func encode(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// getDoc loads one JSON document; kind names the record for the not-found error.
func (s *Store) getDoc(ctx context.Context, kind, key, query string, args []any, v any) error {
	var data string
	err := s.db.QueryRowContext(ctx, query, args...).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return api.Errorf(api.ErrNotFound, "%s %q not found", kind, key)
	}
	if err != nil {
		return fmt.Errorf("load %s %q: %w", kind, key, err)
	}
	return json.Unmarshal([]byte(data), v)
}

// listDocs loads every JSON document a query returns, in order.
func listDocs[T any](ctx context.Context, db *sql.DB, query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		var data string
		if err := rows.Scan(&data); err != nil {
			return nil, err
		}
		var v T
		if err := json.Unmarshal([]byte(data), &v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func listStrings(ctx context.Context, db *sql.DB, query string, args ...any) ([]string, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
