package model

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// AccountEnvironment is one file under account_environments/: it binds an AWS account to an
// environment. The selector is `environment`, or `name` in older files. Booleans may be JSON
// booleans or the strings "true"/"false". Every field, known or not, is kept in Fields.
type AccountEnvironment struct {
	File        string         `json:"file"`
	Name        string         `json:"name,omitempty"`
	Environment string         `json:"environment"`
	Fields      map[string]any `json:"fields"`
}

// Bool reads a boolean field written either as a JSON boolean or as "true"/"false".
func (a AccountEnvironment) Bool(key string) (bool, error) {
	switch v := a.Fields[key].(type) {
	case nil:
		return false, nil
	case bool:
		return v, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	}
	return false, fmt.Errorf("%s: field %q: want a boolean or \"true\"/\"false\", found %v", a.File, key, a.Fields[key])
}

// Account environment flags Karma reads.
const (
	// FlagAllowDrift: drift found in the environment is only reported; when false (the
	// default) a corrective change set is queued (docs/drift.md).
	FlagAllowDrift = "allow_drift"
	// FlagDriftRefresh: the drift check also runs a refresh-only Terraform plan of every
	// component, which calls the cloud (opt-in; default false).
	FlagDriftRefresh = "drift_refresh"
)

// boolFields are the account environment flags Karma reads; each is checked at load time.
var boolFields = []string{"iac_strict", "lambda_strict", FlagAllowDrift, FlagDriftRefresh}

// Account returns the account environment file that selects env (the first by file name when
// several do), and whether there is one.
func (r *Repo) Account(env string) (AccountEnvironment, bool) {
	for _, a := range r.Accounts {
		if a.Environment == env {
			return a, true
		}
	}
	return AccountEnvironment{}, false
}

// Flag reads a boolean flag of env's account environment: false when no file selects env or
// the field is absent. The load already reported an invalid value as an error, so an invalid
// value reads as false here.
func (r *Repo) Flag(env, key string) bool {
	a, ok := r.Account(env)
	if !ok {
		return false
	}
	v, _ := a.Bool(key)
	return v
}

func loadAccountEnvironments(fsys fs.FS, diags *Diagnostics) []AccountEnvironment {
	const dir = "account_environments"
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil
	}
	var out []AccountEnvironment
	for _, e := range entries {
		name := e.Name()
		ext := strings.ToLower(filepath.Ext(name))
		if e.IsDir() || (e.Type()&fs.ModeSymlink == 0 && ext != ".json" && ext != ".yaml" && ext != ".yml") {
			continue
		}
		rel := dir + "/" + name
		data, err := readRegular(fsys, rel)
		if err != nil {
			*diags = append(*diags, Diagnostic{Severity: SevError, Code: CodeAccountEnv, File: rel, Message: err.Error()})
			continue
		}
		var fields map[string]any
		if ext == ".json" {
			obj, d := decodeObject(rel, data)
			if d == nil {
				d = strictJSON(rel, data)
			}
			if d != nil {
				*diags = append(*diags, *d)
				continue
			}
			fields = obj
		} else if d := checkUTF8(rel, data); d != nil {
			d.Code = CodeAccountEnv // a YAML file: not invalid-json
			*diags = append(*diags, *d)
			continue
		} else if err := yaml.Unmarshal(data, &fields); err != nil || fields == nil {
			msg := "expected a YAML mapping"
			if err != nil {
				msg = err.Error()
			}
			*diags = append(*diags, Diagnostic{Severity: SevError, Code: CodeAccountEnv, File: rel, Message: msg})
			continue
		}
		a := AccountEnvironment{File: rel, Fields: fields}
		a.Name, _ = fields["name"].(string)
		a.Environment, _ = fields["environment"].(string)
		if a.Environment == "" {
			a.Environment = a.Name // older files select the environment by name
		}
		if a.Environment == "" {
			a.Environment = strings.TrimSuffix(name, filepath.Ext(name))
			*diags = append(*diags, Diagnostic{Severity: SevWarning, Code: CodeAccountEnv, File: rel,
				Message: fmt.Sprintf("neither \"environment\" nor \"name\" is set; using the file name %q", a.Environment)})
		}
		for _, k := range boolFields {
			if _, err := a.Bool(k); err != nil {
				*diags = append(*diags, Diagnostic{Severity: SevError, Code: CodeAccountEnv, File: rel, Pointer: "/" + k, Message: err.Error()})
			}
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].File < out[j].File })
	return out
}
