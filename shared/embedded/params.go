package embedded

// ParamStore: params.Store on the embedded SQLite file, namespaced by AWS account id (one
// account is one environment; one file holds several).
//
// Contract beyond params.Store (checked by paramstest plus params_test.go):
//   - Names, values, types, tiers and descriptions are checked against SSM's documented limits
//     (params.CheckPut) before anything is read or written; a *params.InvalidError names the
//     parameter, and is permanent for the pipeline: a value SSM would refuse is refused here too.
//   - "Identical" means same value and same type: a Put differing only in Description, Tier or
//     User is a no-op, as with the SSM store (which cannot see those cheaply).
//   - Every version is kept in params_history (History); Delete removes the parameter and its
//     history, as SSM does, so a re-created parameter starts again at version 1.
//   - When Tier is empty it is params.TierFor(value), except that an Advanced parameter stays
//     Advanced; forcing Standard on an Advanced parameter, or on a value above 4 KB, fails.
//   - A parameter's type never changes (SSM's HierarchyTypeMismatchException): delete first.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/params"
)

var _ params.Store = (*ParamStore)(nil)

// ParamStore is params.Store on an embedded DB for one account. Safe for concurrent use.
type ParamStore struct {
	db      *DB
	account string
}

// NotFoundError says a parameter does not exist in an account. It matches params.ErrNotFound.
type NotFoundError struct{ Account, Name string }

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("embedded params: parameter %q not found in account %s", e.Name, e.Account)
}

// Unwrap makes errors.Is(err, params.ErrNotFound) true.
func (e *NotFoundError) Unwrap() error { return params.ErrNotFound }

const columns = "name, value, type, version, modified_at, modified_by, description"

// NewParamStore creates the parameter tables if needed and returns the store for account.
func NewParamStore(db *DB, account string) (*ParamStore, error) {
	if db == nil || db.SQL == nil || account == "" {
		return nil, errors.New("embedded params: NewParamStore needs a DB and a non-empty account")
	}
	if err := CreateParamTables(db); err != nil {
		return nil, err
	}
	return &ParamStore{db: db, account: account}, nil
}

// CreateParamTables creates the parameter tables if needed, once per DB: the stores of other
// accounts, opened later (e.g. by a stage's handler, inside a transaction of the file; join.go),
// then write nothing.
func CreateParamTables(db *DB) error {
	db.paramsOnce.Do(func() { db.paramsErr = createParamTables(db) })
	return db.paramsErr
}

func createParamTables(db *DB) error {
	const cols = `account TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
	type TEXT NOT NULL, tier TEXT NOT NULL, version INTEGER NOT NULL,
	modified_at INTEGER NOT NULL, -- unix nanoseconds
	modified_by TEXT NOT NULL DEFAULT '', description TEXT NOT NULL DEFAULT ''`
	err := db.migrate(context.Background(),
		`CREATE TABLE IF NOT EXISTS params (`+cols+`, PRIMARY KEY (account, name)) WITHOUT ROWID`,
		`CREATE TABLE IF NOT EXISTS params_history (`+cols+`,
			PRIMARY KEY (account, name, version)) WITHOUT ROWID`)
	return err
}

// Get returns the current version of name.
func (s *ParamStore) Get(ctx context.Context, name string) (params.Parameter, error) {
	if err := params.CheckName(name); err != nil {
		return params.Parameter{}, err
	}
	p, err := scanParam(s.db.conn(ctx).QueryRowContext(ctx,
		`SELECT `+columns+` FROM params WHERE account = ? AND name = ?`, s.account, name))
	if errors.Is(err, sql.ErrNoRows) {
		return params.Parameter{}, &NotFoundError{Account: s.account, Name: name}
	} else if err != nil {
		return params.Parameter{}, s.wrap("get", name, err)
	}
	return p, nil
}

// GetByPath returns every parameter strictly below path (recursively), sorted by name.
// "/iac" and "/iac/" match "/iac/x/y" but neither "/iac" itself nor "/iacx"; "/" matches all.
func (s *ParamStore) GetByPath(ctx context.Context, path string) ([]params.Parameter, error) {
	prefix := "/"
	if path != "/" {
		trimmed := strings.TrimSuffix(path, "/")
		if err := params.CheckName(trimmed); err != nil {
			return nil, err
		}
		prefix = trimmed + "/"
	}
	// "<p>/" <= name < "<p>0" ('0' follows '/'): the key range, and no LIKE wildcards ('_').
	upper := prefix[:len(prefix)-1] + "0"
	out, err := collect(s.db.conn(ctx).QueryContext(ctx, `SELECT `+columns+` FROM params
		WHERE account = ? AND name >= ? AND name < ? ORDER BY name`, s.account, prefix, upper))
	return out, s.wrap("get by path", path, err)
}

// History returns every kept version of name, oldest first.
func (s *ParamStore) History(ctx context.Context, name string) ([]params.Parameter, error) {
	if err := params.CheckName(name); err != nil {
		return nil, err
	}
	out, err := collect(s.db.conn(ctx).QueryContext(ctx, `SELECT `+columns+` FROM params_history
		WHERE account = ? AND name = ? ORDER BY version`, s.account, name))
	if err == nil && len(out) == 0 {
		err = &NotFoundError{Account: s.account, Name: name}
	}
	if err != nil {
		return nil, s.wrap("history", name, err)
	}
	return out, nil
}

// Put writes in.Value as a new version unless value and type equal the current ones.
func (s *ParamStore) Put(ctx context.Context, in params.PutInput) (res params.PutResult, err error) {
	typ, err := params.CheckPut(in)
	if err != nil {
		return res, err
	}
	err = s.db.inTx(ctx, func(tx *sql.Tx) error {
		var curValue, curType, curTier string
		var cur int64 // stays 0 for a new parameter
		err := tx.QueryRowContext(ctx, `SELECT value, type, tier, version FROM params
			WHERE account = ? AND name = ?`, s.account, in.Name).Scan(&curValue, &curType, &curTier, &cur)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if cur > 0 && curValue == in.Value && curType == typ {
			res = params.PutResult{Version: cur, Changed: false}
			return nil
		} else if cur > 0 && curType != typ {
			return invalid(in.Name, "type %s cannot change to %s (SSM refuses it; delete first)", curType, typ)
		}
		tier, err := resolveTier(in, curTier == params.TierAdvanced)
		if err != nil {
			return err
		}
		const row = `(account, name, value, type, tier, version, modified_at, modified_by, description)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
		args := []any{s.account, in.Name, in.Value, typ, tier, cur + 1,
			time.Now().UTC().UnixNano(), in.User, in.Description}
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO params `+row, args...); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO params_history `+row, args...); err != nil {
			return err
		}
		res = params.PutResult{Version: cur + 1, Changed: true}
		return nil
	})
	if err != nil {
		return params.PutResult{}, s.wrap("put", in.Name, err)
	}
	return res, nil
}

// Delete removes name and its history; an unknown name is a NotFoundError.
func (s *ParamStore) Delete(ctx context.Context, name string) error {
	if err := params.CheckName(name); err != nil {
		return err
	}
	return s.wrap("delete", name, s.db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM params WHERE account = ? AND name = ?`, s.account, name)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return &NotFoundError{Account: s.account, Name: name}
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM params_history WHERE account = ? AND name = ?`, s.account, name)
		return err
	}))
}

// wrap adds context to driver errors and passes this package's typed errors through.
func (s *ParamStore) wrap(op, name string, err error) error {
	if err == nil || errors.As(err, new(*NotFoundError)) || errors.As(err, new(*params.InvalidError)) {
		return err
	}
	return fmt.Errorf("embedded params: %s %q in account %s: %w", op, name, s.account, err)
}

func scanParam(r interface{ Scan(...any) error }) (params.Parameter, error) {
	var p params.Parameter
	var nanos int64
	err := r.Scan(&p.Name, &p.Value, &p.Type, &p.Version, &nanos, &p.LastModifiedUser, &p.Description)
	p.LastModified = time.Unix(0, nanos).UTC()
	return p, err
}

func collect(rows *sql.Rows, err error) ([]params.Parameter, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []params.Parameter{}
	for rows.Next() {
		p, err := scanParam(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func invalid(name, format string, a ...any) error {
	return &params.InvalidError{Name: name, Reason: fmt.Sprintf(format, a...)}
}

// resolveTier applies the default and SSM's rule that Advanced never goes back to Standard.
func resolveTier(in params.PutInput, wasAdvanced bool) (string, error) {
	switch {
	case wasAdvanced && in.Tier == params.TierStandard:
		return "", invalid(in.Name, "an Advanced parameter cannot be downgraded to Standard (delete it first)")
	case wasAdvanced || in.Tier == params.TierAdvanced:
		return params.TierAdvanced, nil
	case in.Tier == params.TierStandard:
		return params.TierStandard, nil
	}
	return params.TierFor(in.Value), nil
}
