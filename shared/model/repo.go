// Package model reads a config repository into components: it finds every
// iac/<env>/<type>/<nickname>/config.json, resolves inheritance, validates against per-type JSON
// Schemas and extracts the references between components.
//
// Layers, lowest first, each applied with JSON Merge Patch (RFC 7386, null deletes):
//  1. the resolved config of the `extends` parent (karma.extends: "<type>/<nickname>", same env,
//     the parent may exist only in the base layer — a template);
//  2. the base layer iac/_base/<type>/<nickname>/config.json, shared by every environment;
//  3. the environment's own file iac/<env>/<type>/<nickname>/config.json.
//
// Only an environment file makes a component exist in that environment. The reserved `karma`
// object (depends_on, extends) is read from the merged layers and removed from the resolved
// config; the resolved config is what is published, deployed and hashed.
//
// Loading never stops at the first problem: every problem is returned as a Diagnostic naming its
// file (and line, column or JSON pointer where known).
package model

import (
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// BaseEnv is the folder under iac/ that holds the base layer.
const BaseEnv = "_base"

// Layer is one parsed config file.
type Layer struct {
	File string // relative to the repository root, slash-separated
	Data map[string]any
	// NoNulls is set when the file holds no null: merged onto nothing, it is the result as it
	// stands (MergePatch would walk it to look for nulls to drop).
	NoNulls bool
}

// source is one component found on disk, before resolution.
type source struct {
	env, typ, nickname string
	file               string // relative path of the env (or base) file
	layer              *Layer // nil when the file failed to parse (or was released, see own)
	duplicate          bool   // its id differs from another's only by case: not resolved
}

// Repo is a loaded repository.
type Repo struct {
	// Root names what was read: a directory, or a repository at a commit ("repo@sha").
	Root         string
	Settings     Settings
	Accounts     []AccountEnvironment
	Environments []string // every environment with an iac/<env> folder or an account file, sorted
	Components   []*Component
	Diagnostics  Diagnostics

	fsys    fs.FS              // what was read: a directory or a commit's tree
	base    map[string]*source // "<type>/<nickname>" -> base layer
	schemas *schemaCache       // shared with the repositories derived from this one
	rules   *compiledRules
	// subOwners: "<env>/<type>/<name>" of a per-sub-object runtime -> the component writing it.
	subOwners map[string]*Component
	// snap is what loading resolved, for Derive; nil when loaded with overrides or derived.
	snap *snapshot
}

// LoadOptions select what to load.
type LoadOptions struct {
	// Env limits components to one environment ("" loads all).
	Env string
	// Settings override karma.json.
	Settings Settings
	// Overrides replace the content of existing config files (repository-relative, slash
	// separated paths), e.g. a proposed change to iac/<env>/<type>/<nickname>/config.json.
	Overrides map[string][]byte
	// Derivable keeps, on the Repo, what loads with overrides derive from (Repo.Derive,
	// BuildDerived): each component as resolved before the rules' links, its problems and the
	// files it read — about 15 % more memory, for a repository that is kept and built again with
	// overrides (configrepo's cache). Ignored with Overrides.
	Derivable bool
}

// Load reads the repository in directory root (see LoadFS; its config files are read as
// dirfs.go says). Symbolic links in it are refused.
func Load(root string, opts LoadOptions) (*Repo, error) {
	st, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", root, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("repository %s: not a directory", root)
	}
	return LoadFS(newDirFS(root), root, opts)
}

// LoadFS reads the repository in fsys — a directory (os.DirFS) or a commit's tree
// (gitrepo.Repo.Tree) — named name in messages. Nothing outside fsys is read, except the
// modules folder when the settings give it as an absolute path; symbolic links (which could
// lead outside) are refused with an error naming them. The returned error is for unusable input
// (unreadable karma.json); problems in the configs are Diagnostics on the Repo. If fsys has a
// ReadFile method, it must return a slice of its own at each call, as fs.ReadFileFS asks: the
// values parsed from a file share its bytes (opts.Overrides, which stay the caller's, are copied).
func LoadFS(fsys fs.FS, name string, opts LoadOptions) (*Repo, error) {
	settings, err := LoadSettingsFS(fsys, opts.Settings)
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", name, err)
	}
	r := &Repo{Root: name, Settings: settings, fsys: fsys, base: map[string]*source{}, schemas: &schemaCache{}}
	r.Accounts = loadAccountEnvironments(fsys, &r.Diagnostics)
	srcs, envs := r.discover(opts.Env)
	envSet := map[string]bool{}
	for _, e := range envs {
		envSet[e] = true
	}
	for _, a := range r.Accounts {
		envSet[a.Environment] = true
	}
	for e := range envSet {
		if opts.Env == "" || e == opts.Env {
			r.Environments = append(r.Environments, e)
		}
	}
	sort.Strings(r.Environments)
	if opts.Env != "" && !envSet[opts.Env] {
		return nil, &UnknownEnvironmentError{Env: opts.Env, Repo: name}
	}
	var baseSrcs, envSrcs []*source
	for _, s := range srcs {
		if s.env == BaseEnv {
			r.base[s.typ+"/"+s.nickname] = s
			baseSrcs = append(baseSrcs, s)
		} else {
			envSrcs = append(envSrcs, s)
		}
	}
	rd := &reader{fsys: fsys, overrides: opts.Overrides}
	// Base layers are read first and kept: any environment's components may merge them. The
	// environments' files are read as they are resolved (resolveSet).
	baseDiags := readAll(rd, baseSrcs)
	r.checkDuplicates(envSrcs)
	r.rules = compileRules(r.Settings)
	res := r.resolveSet(envSrcs, rd, nil)
	keep := opts.Derivable && len(opts.Overrides) == 0 && !res.cycles && len(res.misc) == 0
	snap := newSnapshot(opts.Env, r.Diagnostics, baseSrcs, baseDiags, envSrcs, res, keep)
	r.assemble(snap.units, nil, append(snap.fixed(baseDiags), res.misc...), res.templates, nil, !keep)
	if keep {
		r.snap = snap
	}
	return r, nil
}

// UnknownEnvironmentError is LoadFS's error for an environment (LoadOptions.Env) the repository
// does not have: no iac/<env> folder and no account environment selecting it — a typo, or an
// environment whose last component a commit removed.
type UnknownEnvironmentError struct{ Env, Repo string }

func (e *UnknownEnvironmentError) Error() string {
	return fmt.Sprintf("environment %q: not found in %s (no iac/%s folder and no account environment selects it)", e.Env, e.Repo, e.Env)
}

// discover lists iac/<env>/<type>/<nickname>/config.json, reporting anything off the layout.
// Folders are read with ReadDir, whose entries say what they are without following anything:
// a symbolic link is an error wherever it stands.
func (r *Repo) discover(onlyEnv string) ([]*source, []string) {
	envEntries, err := fs.ReadDir(r.fsys, "iac")
	if err != nil {
		if fi, lerr := fs.Lstat(r.fsys, "iac"); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			r.refuseLink("iac")
		} else if lerr == nil && special(fi.Mode()) {
			r.refuseSpecial("iac")
		}
		return nil, nil
	}
	var srcs []*source
	var envs []string
	warn := func(rel, msg string) {
		r.Diagnostics = append(r.Diagnostics, Diagnostic{Severity: SevWarning, Code: CodeLayout, File: rel, Message: msg})
	}
	for _, ee := range envEntries {
		env := ee.Name()
		relEnv := "iac/" + env
		switch {
		case isLink(ee):
			r.refuseLink(relEnv)
			continue
		case special(ee.Type()):
			r.refuseSpecial(relEnv)
			continue
		case !ee.IsDir():
			warn(relEnv, "ignored: expected iac/<env>/<type>/<nickname>/config.json")
			continue
		}
		if env != BaseEnv {
			envs = append(envs, env)
			r.checkEnvCase(envEntries, env, onlyEnv)
			if onlyEnv != "" && env != onlyEnv {
				continue
			}
		}
		typeEntries, _ := fs.ReadDir(r.fsys, relEnv)
		for _, te := range typeEntries {
			typ := te.Name()
			relType := relEnv + "/" + typ
			switch {
			case isLink(te):
				r.refuseLink(relType)
				continue
			case special(te.Type()):
				r.refuseSpecial(relType)
				continue
			case !te.IsDir():
				warn(relType, "ignored: expected a component type folder")
				continue
			case !validType(typ):
				r.Diagnostics = append(r.Diagnostics, Diagnostic{Severity: SevError, Code: CodeLayout, File: relType,
					Message: fmt.Sprintf("component type %q: use lower-case letters, digits, '-' and '_'", typ)})
				continue
			}
			nickEntries, _ := fs.ReadDir(r.fsys, relType)
			for _, ne := range nickEntries {
				if s := r.componentSource(env, typ, relType, ne, warn); s != nil {
					srcs = append(srcs, s)
				}
			}
		}
	}
	return srcs, envs
}

// checkEnvCase reports environment folder env when another differs from it only by case and
// either is the environment loaded (onlyEnv; "" = all): Git on macOS and Windows checks both out
// into one folder, and Terraform's workspaces (<work dir>/<env>/<type>/<nickname>) on such a
// file system would be one for both, each environment planning against the other's state.
func (r *Repo) checkEnvCase(entries []fs.DirEntry, env, onlyEnv string) {
	for _, e := range entries {
		other := e.Name()
		if other == env || !strings.EqualFold(other, env) || !e.IsDir() || (onlyEnv != "" && onlyEnv != env && onlyEnv != other) {
			continue
		}
		r.Diagnostics = append(r.Diagnostics, Diagnostic{Severity: SevError, Code: CodeDuplicate, File: "iac/" + env,
			Message: fmt.Sprintf("environment defined twice: also iac/%s (names differ only by case; on a case-insensitive file system they are one folder, and one Terraform workspace per component)", other)})
		return
	}
}

// componentSource checks one entry of a type folder: a folder holding a regular config.json.
func (r *Repo) componentSource(env, typ, relType string, ne fs.DirEntry, warn func(rel, msg string)) *source {
	nick := ne.Name()
	rel := relType + "/" + nick
	switch {
	case isLink(ne):
		r.refuseLink(rel)
		return nil
	case special(ne.Type()):
		r.refuseSpecial(rel)
		return nil
	case !ne.IsDir():
		warn(rel, "ignored: expected a component folder holding config.json")
		return nil
	case !validNickname(nick):
		r.Diagnostics = append(r.Diagnostics, Diagnostic{Severity: SevError, Code: CodeLayout, File: rel,
			Message: fmt.Sprintf("nickname %q: use letters, digits, '.', '-' and '_' (Parameter Store rules)", nick)})
		return nil
	}
	file := rel + "/config.json"
	fi, err := fs.Lstat(r.fsys, file)
	switch {
	case err != nil:
		warn(rel, "ignored: no config.json in this component folder")
		return nil
	case fi.Mode()&fs.ModeSymlink != 0:
		r.refuseLink(file)
		return nil
	case !fi.Mode().IsRegular():
		r.Diagnostics = append(r.Diagnostics, Diagnostic{Severity: SevError, Code: CodeLayout, File: file, Message: errNotRegular.Error()})
		return nil
	}
	return &source{env: env, typ: typ, nickname: nick, file: file}
}

func isLink(e fs.DirEntry) bool { return e.Type()&fs.ModeSymlink != 0 }

// special reports a type that is neither a folder, a regular file nor a symbolic link: a git
// submodule in a commit's tree (gitrepo.TreeFS: fs.ModeIrregular), a FIFO, socket or device in a
// directory.
func special(m fs.FileMode) bool {
	return m.Type()&^fs.ModeSymlink != 0 && !m.IsDir()
}

// refuseSpecial reports a submodule (or special file) where a folder of the layout is expected:
// its content is not part of the commit, so nothing under it could be deployed from the commit;
// ignoring it would drop what it stands for without an error.
func (r *Repo) refuseSpecial(rel string) {
	r.Diagnostics = append(r.Diagnostics, Diagnostic{Severity: SevError, Code: CodeLayout, File: rel,
		Message: errSpecial.Error()})
}

// refuseLink reports a symbolic link: Karma never follows one, since its target could lie
// outside the repository (a secrets file published to Parameter Store, say).
func (r *Repo) refuseLink(rel string) {
	r.Diagnostics = append(r.Diagnostics, Diagnostic{Severity: SevError, Code: CodeLayout, File: rel,
		Message: errLink.Error()})
}

// reader reads the config files of a repository: from its file system, or from the overrides.
type reader struct {
	fsys      fs.FS
	overrides map[string][]byte
}

// read reads and parses s's file into s.layer; a failure is returned as a diagnostic (s.layer
// stays nil).
func (rd *reader) read(p *parser, s *source) *Diagnostic {
	data, over := rd.overrides[s.file]
	if !over {
		var err error
		if data, err = readConfigFile(rd.fsys, s.file); err != nil {
			return &Diagnostic{Severity: SevError, Code: CodeLayout, File: s.file, Message: err.Error()}
		}
	}
	// The bytes read are the caller's (fs.ReadFileFS: "the caller is permitted to modify the
	// returned byte slice"; readConfig's are new), and read never changes them; an override's
	// are the caller's.
	obj, nulls, d := p.decode(s.file, data, !over)
	if d != nil {
		return d
	}
	s.layer = &Layer{File: s.file, Data: obj, NoNulls: !nulls}
	return nil
}

// readAll reads and parses every source in parallel; a failure is the diagnostic at its index.
func readAll(rd *reader, srcs []*source) []*Diagnostic {
	out := make([]*Diagnostic, len(srcs))
	parallel(len(srcs), 4*runtime.GOMAXPROCS(0), func(w *worker, i int) {
		out[i] = rd.read(w.parser, srcs[i])
	})
	return out
}

// worker is the scratch space of one goroutine of parallel: reused from item to item.
type worker struct {
	parser *parser
	walker refWalker
}

// parallel calls fn for 0 <= i < n on the given number of goroutines, each with its own worker.
// Goroutines take the next index from a counter: no channel, no hand-off between goroutines per
// item.
func parallel(n, workers int, fn func(w *worker, i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, max(n, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &worker{parser: newParser()}
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(w, i)
			}
		}()
	}
	wg.Wait()
}

// checkDuplicates reports components whose ids differ only by case: Git on case-insensitive file
// systems, S3 keys in reviews and people reading paths treat them as one component, while
// Parameter Store keeps two.
func (r *Repo) checkDuplicates(srcs []*source) {
	seen := make(map[string]*source, len(srcs))
	for _, s := range srcs {
		key := strings.ToLower(s.env + "/" + s.typ + "/" + s.nickname)
		if prev, ok := seen[key]; ok {
			r.Diagnostics = append(r.Diagnostics, Diagnostic{Severity: SevError, Code: CodeDuplicate, File: s.file,
				Component: s.env + "/" + s.typ + "/" + s.nickname,
				Message:   fmt.Sprintf("component defined twice: also in %s (names differ only by case)", prev.file)})
			s.duplicate = true // still read, so that its own problems are reported too
			continue
		}
		seen[key] = s
	}
}

// ReadFile reads a file of the repository as it was read (a directory or a commit's tree),
// without the overrides of LoadOptions: an environment file as committed, for the editor of a
// proposal. From a directory, a symbolic link or a special file in its place is refused, as
// when it was loaded (dirfs.go).
func (r *Repo) ReadFile(name string) ([]byte, error) {
	if r.fsys == nil {
		return nil, fs.ErrNotExist
	}
	return readConfigFile(r.fsys, name)
}
