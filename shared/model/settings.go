package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/usekarma/karma/shared/governance"
)

// SettingsFile is the optional file at the root of a config repository that tunes how it is read.
const SettingsFile = "karma.json"

// DefaultPrefix is the Parameter Store prefix used when none is configured.
const DefaultPrefix = "/iac"

// DefaultAliases maps reference keys whose type is not their prefix to the type they name. Keys
// not listed here name the type spelled by their prefix with '_' turned into '-'
// (s3_bucket_nickname -> s3-bucket).
var DefaultAliases = map[string]string{
	"cluster_nickname": "ecs-cluster",
}

// Settings says how a repository is read. Zero values take the defaults in Defaults.
type Settings struct {
	// Prefix is the Parameter Store prefix, e.g. "/iac".
	Prefix string `json:"prefix,omitempty"`
	// Aliases maps a reference key (e.g. "cluster_nickname") to the component type it names.
	// Entries here are added to DefaultAliases and win over them.
	Aliases map[string]string `json:"aliases,omitempty"`
	// ModulesDir holds one folder per component type (Terraform module, optional
	// config.schema.json) and any folder their modules call by a local source ("../common").
	// Relative paths are relative to the repository. Default "components".
	ModulesDir string `json:"modules_dir,omitempty"`
	// References are the reference rules (rules.go). Defaults merges them with
	// DefaultReferenceRules: a rule here replaces the default of the same name.
	References *ReferenceRules `json:"references,omitempty"`
	// Promotion is the order changes flow through environments, with each one's soak and
	// approval gates (promotion.go). Empty: every environment a commit concerns deploys at once.
	Promotion PromotionOrder `json:"promotion,omitempty"`
	// Environments and Identities are the governance rules: protected environments, approvals,
	// their expiry, auto-approve, and who is who (shared/governance). Policies are in Policies.
	governance.Settings
	// PoliciesDir holds the Rego policies evaluated on every change (shared/policy); default
	// "policies". Read from the change set's commit, like everything deployed.
	PoliciesDir string `json:"policies_dir,omitempty"`
}

var (
	prefixRe = regexp.MustCompile(`^(/[A-Za-z0-9_.-]+)+$`)
)

// Defaults fills empty fields and merges the alias table and the reference rules.
func (s Settings) Defaults() Settings {
	if s.Prefix == "" {
		s.Prefix = DefaultPrefix
	}
	if s.ModulesDir == "" {
		s.ModulesDir = "components"
	}
	if s.PoliciesDir == "" {
		s.PoliciesDir = "policies"
	}
	merged := make(map[string]string, len(DefaultAliases)+len(s.Aliases))
	for k, v := range DefaultAliases {
		merged[k] = v
	}
	for k, v := range s.Aliases {
		merged[k] = v
	}
	s.Aliases = merged
	s.References = s.References.withDefaults()
	return s
}

// Validate reports every problem at once, each a *SettingsError naming its JSON pointer in
// karma.json.
func (s Settings) Validate() error {
	var v ruleValidator
	if s.Prefix != "" && !prefixRe.MatchString(s.Prefix) {
		v.bad("/prefix", "%q: want a parameter path such as /iac (no trailing slash)", s.Prefix)
	}
	keys := make([]string, 0, len(s.Aliases))
	for k := range s.Aliases {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !strings.HasSuffix(k, "_nickname") {
			v.bad("/aliases/"+escapePointer(k), "key %q must end in _nickname", k)
		}
		if t := s.Aliases[k]; !validType(t) {
			v.bad("/aliases/"+escapePointer(k), "%q maps to %q, which is not a component type name", k, t)
		}
	}
	v.errs = append(v.errs, s.Promotion.validate()...)
	for _, p := range s.Settings.Problems() {
		v.bad(p.Pointer, "%s", p.Message)
	}
	return errors.Join(append(v.errs, s.References.validate()...)...)
}

// LoadSettings reads <root>/karma.json when present; overrides (e.g. --prefix) win over the file.
func LoadSettings(root string, override Settings) (Settings, error) {
	return LoadSettingsFS(os.DirFS(root), override)
}

// LoadSettingsFS reads karma.json at the top of fsys when present (a symbolic link is refused);
// overrides win over the file.
func LoadSettingsFS(fsys fs.FS, override Settings) (Settings, error) {
	var s Settings
	data, err := readRegular(fsys, SettingsFile)
	switch {
	case err == nil:
		if _, d := decodeObject(SettingsFile, data); d != nil {
			return s, errors.New(d.String())
		}
		if d := strictJSON(SettingsFile, data); d != nil {
			return s, errors.New(d.String())
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return s, fmt.Errorf("%s: %w", SettingsFile, err)
		}
		if s.ModulesDir != "" && !fs.ValidPath(path.Clean(s.ModulesDir)) {
			return s, fmt.Errorf("%s: modules_dir %q: want a folder inside the repository (relative, no '..'): what is deployed must come from the commit", SettingsFile, s.ModulesDir)
		}
		if s.PoliciesDir != "" && !fs.ValidPath(path.Clean(s.PoliciesDir)) {
			return s, fmt.Errorf("%s: policies_dir %q: want a folder inside the repository (relative, no '..'): policies must come from the commit", SettingsFile, s.PoliciesDir)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return s, err
	}
	if override.Prefix != "" {
		s.Prefix = override.Prefix
	}
	if override.ModulesDir != "" {
		s.ModulesDir = override.ModulesDir
	}
	for k, v := range override.Aliases {
		if s.Aliases == nil {
			s.Aliases = map[string]string{}
		}
		s.Aliases[k] = v
	}
	if err := s.Validate(); err != nil {
		return s, fmt.Errorf("%s: %w", SettingsFile, err)
	}
	return s.Defaults(), nil
}

// ConfigParam is the parameter name a component's resolved config is published to.
func ConfigParam(prefix, typ, nickname string) string {
	return prefix + "/" + typ + "/" + nickname + "/config"
}

// RuntimeParam is the parameter name a component's Terraform outputs are published to.
func RuntimeParam(prefix, typ, nickname string) string {
	return prefix + "/" + typ + "/" + nickname + "/runtime"
}

// EnvironmentParam binds an account to an environment.
func EnvironmentParam(prefix string) string { return prefix + "/environment" }

// readRegular reads a regular file of fsys; a symbolic link is refused (its target could lie
// outside the repository), before the file is opened and, from a directory, by the open too
// (readConfigFile).
func readRegular(fsys fs.FS, name string) ([]byte, error) {
	fi, err := fs.Lstat(fsys, name)
	if err != nil {
		return nil, err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("%s: %w", name, errLink)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w", name, errNotRegular)
	}
	return readConfigFile(fsys, name)
}
