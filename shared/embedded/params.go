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
			PRIMARY KEY (account, name, version)) WITHOUT ROWID`,
		// A version written to the history is the current one: Put writes only the history
		// row, in one statement, and this keeps params (what Get and GetByPath read) in step.
		// A binary from before it wrote both, params first; the trigger then writes the same
		// row again, so files shared with such a binary stay consistent either way.
		`CREATE TRIGGER IF NOT EXISTS params_current AFTER INSERT ON params_history BEGIN
			INSERT OR REPLACE INTO params (`+paramRow+`) VALUES (NEW.account, NEW.name, NEW.value,
				NEW.type, NEW.tier, NEW.version, NEW.modified_at, NEW.modified_by, NEW.description);
		END`)
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

// paramRow is the columns of params and params_history, in the order Put writes them.
const paramRow = "account, name, value, type, tier, version, modified_at, modified_by, description"

// Put writes in.Value as a new version unless value and type equal the current ones.
//
// One statement in the common case (putNew): the new version goes into params_history, with its
// number and tier taken from the current version in the same statement, unless the current
// version has the same value and type or another type; the trigger params_current makes it the
// current version. Only when that writes nothing (an identical value, a type that may not
// change), or when the tier asked for may be refused, is the current version read first.
func (s *ParamStore) Put(ctx context.Context, in params.PutInput) (res params.PutResult, err error) {
	typ, err := params.CheckPut(in)
	if err != nil {
		return res, err
	}
	now := time.Now().UTC().UnixNano()
	err = s.db.inTx(ctx, func(tx *sql.Tx) error {
		if v, ok, err := s.putNew(ctx, tx, in, typ, now); err != nil || ok {
			res = params.PutResult{Version: v, Changed: ok}
			return err
		}
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
		if _, err := tx.ExecContext(ctx, `INSERT INTO params_history (`+paramRow+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			s.account, in.Name, in.Value, typ, tier, cur+1, now, in.User, in.Description); err != nil {
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

// putNew writes in as the next version in one statement when it is new and nothing can refuse
// it: no current version, or one of the same type with another value. It reports the version
// written, and ok false (nothing written) otherwise, for Put to look at the current version.
func (s *ParamStore) putNew(ctx context.Context, tx *sql.Tx, in params.PutInput, typ string, now int64) (version int64, ok bool, err error) {
	ifAdvanced, err := resolveTier(in, true)
	if err != nil {
		return 0, false, nil // Standard asked for: refused if the current version is Advanced
	}
	ifNot, err := resolveTier(in, false)
	if err != nil {
		return 0, false, nil
	}
	err = tx.QueryRowContext(ctx, `INSERT INTO params_history (`+paramRow+`)
		SELECT ?1, ?2, ?3, ?4, CASE WHEN cur.tier = ?5 THEN ?6 ELSE ?7 END, coalesce(cur.version, 0) + 1, ?8, ?9, ?10
		FROM (SELECT 1) LEFT JOIN params cur ON cur.account = ?1 AND cur.name = ?2
		WHERE cur.version IS NULL OR (cur.type = ?4 AND cur.value != ?3)
		RETURNING version`,
		s.account, in.Name, in.Value, typ, params.TierAdvanced, ifAdvanced, ifNot, now, in.User, in.Description).Scan(&version)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return version, err == nil, err
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
