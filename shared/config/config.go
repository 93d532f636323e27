// Package config is Karma's one documented configuration: which backend serves each store
// (embedded or AWS), and where. Values come from an optional JSON file (KARMA_CONFIG) and are
// overridden by environment variables; defaults are in one place (Defaults). Endpoints of AWS
// services follow the SDK's own conventions (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_SSM, ...,
// AWS_REGION, credentials chain); only Neptune, which the SDK does not address, has its own.
// docs/configuration.md lists every variable.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Backends.
const (
	Embedded = "embedded"
	AWS      = "aws"
)

// Config selects and locates every store.
type Config struct {
	// Repo is the config repository (a local checkout). KARMA_REPO.
	Repo string `json:"repo"`
	// StateDir holds the embedded state file (karma.db) and Terraform workspaces. KARMA_HOME.
	StateDir string `json:"state_dir"`
	// Prefix is the Parameter Store prefix (default from the repository's karma.json). KARMA_PREFIX.
	Prefix string `json:"prefix"`
	// Env is this account's environment (AWS mode: one account is one environment). KARMA_ENV.
	Env string `json:"env"`

	// Per-store backends: embedded or aws. KARMA_BACKEND sets them all at once.
	Params string `json:"params"` // ssm in AWS. KARMA_PARAMS_BACKEND (also "none" for the CLI)
	Queue  string `json:"queue"`  // SQS + EventBridge in AWS. KARMA_QUEUE_BACKEND
	Graph  string `json:"graph"`  // Neptune in AWS (graph and lineage). KARMA_GRAPH_BACKEND
	Audit  string `json:"audit"`  // DynamoDB in AWS. KARMA_AUDIT_BACKEND
	State  string `json:"state"`  // DynamoDB in AWS (change sets, idempotency). KARMA_STATE_BACKEND

	// AWS locations.
	QueuePrefix     string `json:"queue_prefix"`     // SQS queue names: <prefix><stage>. KARMA_QUEUE_PREFIX
	EventBus        string `json:"event_bus"`        // EventBridge bus ("" = publish straight to queues). KARMA_EVENT_BUS
	NeptuneEndpoint string `json:"neptune_endpoint"` // wss://host:8182/gremlin. KARMA_NEPTUNE_ENDPOINT
	NeptuneIAM      bool   `json:"neptune_iam"`      // sign the handshake with SigV4. KARMA_NEPTUNE_IAM
	// NeptuneNamespace separates graphs sharing one cluster ("" = production). KARMA_NEPTUNE_NAMESPACE
	NeptuneNamespace string `json:"neptune_namespace"`
	AuditTable       string `json:"audit_table"`       // KARMA_AUDIT_TABLE
	ChangeSetTable   string `json:"change_set_table"`  // KARMA_CHANGE_SET_TABLE
	IdempotencyTable string `json:"idempotency_table"` // KARMA_IDEMPOTENCY_TABLE

	// WorkDir holds the Terraform workspaces, one per component. KARMA_WORK_DIR; default
	// <state_dir>/work (Lambda: /tmp/karma/work).
	WorkDir string `json:"work_dir"`
	// CacheDir holds the config repository's cache clone (git/) and each commit's modules
	// (modules/). KARMA_CACHE_DIR; default <state_dir> (Lambda: /tmp/karma).
	CacheDir string `json:"cache_dir"`
	// ModulesDir points at Terraform modules outside the config repository (not versioned with
	// it); default: each commit's own modules folder. KARMA_MODULES_DIR.
	ModulesDir string `json:"modules_dir"`

	// Git says where the config repository is fetched from and how Karma may write to it.
	Git Git `json:"git"`

	// Governance is a JSON file outside the config repository naming the operator's floor of
	// rules (karma.json's "environments" and "identities" shape): a commit's karma.json may
	// tighten them, never loosen them (shared/governance floor.go). KARMA_GOVERNANCE.
	Governance string `json:"governance"`
	// Policies is a folder of Rego policies outside the config repository (the operator's),
	// evaluated beside every commit's and joined with them (shared/policy floor.go). KARMA_POLICIES.
	Policies string `json:"policies"`
}

// Git is the config repository's remote. The CLI reads and commits to the local clone --repo is
// in and needs none of it; karma serve keeps a cache clone under the state directory and the
// Lambda functions one under /tmp, fetched on each push. Credentials are read from files, never
// from the URL, and are never logged.
type Git struct {
	// URL: https://…, ssh://…, git@host:path, file://… or a path. KARMA_GIT_URL. karma serve
	// defaults to the git repository --repo is in.
	URL string `json:"url"`
	// TokenFile holds an HTTPS access token. KARMA_GIT_TOKEN_FILE.
	TokenFile string `json:"token_file"`
	// TokenSecret is a Secrets Manager secret (ARN or name) holding the HTTPS token: fetched when
	// the repository is first opened and written to a 0600 file under the cache folder (the
	// Lambda functions). KARMA_GIT_TOKEN_SECRET.
	TokenSecret string `json:"token_secret"`
	// TokenUser is the basic-auth user sent with the token (default x-access-token; GitLab:
	// oauth2). KARMA_GIT_TOKEN_USER.
	TokenUser string `json:"token_user"`
	// SSHKeyFile is a deploy key for ssh URLs. KARMA_GIT_SSH_KEY_FILE.
	SSHKeyFile string `json:"ssh_key_file"`
	// KnownHostsFile pins the SSH host keys (default ~/.ssh/known_hosts). KARMA_GIT_KNOWN_HOSTS.
	KnownHostsFile string `json:"known_hosts_file"`
	// Branch is the deploy branch (default main). KARMA_GIT_BRANCH.
	Branch string `json:"branch"`
	// Subdir is the config repository's folder inside the git repository. KARMA_GIT_SUBDIR.
	Subdir string `json:"subdir"`
	// Write is how a proposed change reaches the repository: branch (push to the deploy
	// branch), change-branch (push to karma/change/<id>) or none (proposals are refused).
	// KARMA_GIT_WRITE; default none.
	Write string `json:"write"`
}

// Defaults returns the embedded default: everything in one SQLite file under .karma/.
func Defaults() Config {
	return Config{Repo: ".", StateDir: ".karma", Params: Embedded, Queue: Embedded, Graph: Embedded, Audit: Embedded, State: Embedded,
		QueuePrefix: "karma-", AuditTable: "karma-audit", ChangeSetTable: "karma-change-sets", IdempotencyTable: "karma-idempotency"}
}

// Load reads KARMA_CONFIG (if set) over the defaults, then the environment over both.
func Load(getenv func(string) string) (Config, error) {
	c := Defaults()
	if path := getenv("KARMA_CONFIG"); path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("KARMA_CONFIG: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return c, fmt.Errorf("KARMA_CONFIG %s: %w", path, err)
		}
	}
	if all := getenv("KARMA_BACKEND"); all != "" {
		c.Params, c.Queue, c.Graph, c.Audit, c.State = all, all, all, all, all
	}
	str := func(dst *string, key string) {
		if v := getenv(key); v != "" {
			*dst = v
		}
	}
	str(&c.Repo, "KARMA_REPO")
	str(&c.StateDir, "KARMA_HOME")
	str(&c.Prefix, "KARMA_PARAM_PREFIX") // the Lambda functions' historic name
	str(&c.Prefix, "KARMA_PREFIX")
	str(&c.Env, "KARMA_ENV")
	str(&c.Params, "KARMA_PARAMS_BACKEND")
	str(&c.Queue, "KARMA_QUEUE_BACKEND")
	str(&c.Graph, "KARMA_GRAPH_BACKEND")
	str(&c.Audit, "KARMA_AUDIT_BACKEND")
	str(&c.State, "KARMA_STATE_BACKEND")
	str(&c.QueuePrefix, "KARMA_QUEUE_PREFIX")
	str(&c.EventBus, "KARMA_EVENT_BUS")
	str(&c.NeptuneEndpoint, "KARMA_NEPTUNE_ENDPOINT")
	str(&c.NeptuneNamespace, "KARMA_NEPTUNE_NAMESPACE")
	str(&c.AuditTable, "KARMA_AUDIT_TABLE")
	str(&c.ChangeSetTable, "KARMA_CHANGE_SET_TABLE")
	str(&c.IdempotencyTable, "KARMA_IDEMPOTENCY_TABLE")
	str(&c.WorkDir, "KARMA_WORK_DIR")
	str(&c.CacheDir, "KARMA_CACHE_DIR")
	str(&c.ModulesDir, "KARMA_MODULES_DIR")
	str(&c.Git.URL, "KARMA_GIT_URL")
	str(&c.Git.TokenFile, "KARMA_GIT_TOKEN_FILE")
	str(&c.Git.TokenSecret, "KARMA_GIT_TOKEN_SECRET")
	str(&c.Git.TokenUser, "KARMA_GIT_TOKEN_USER")
	str(&c.Git.SSHKeyFile, "KARMA_GIT_SSH_KEY_FILE")
	str(&c.Git.KnownHostsFile, "KARMA_GIT_KNOWN_HOSTS")
	str(&c.Git.Branch, "KARMA_GIT_BRANCH")
	str(&c.Git.Subdir, "KARMA_GIT_SUBDIR")
	str(&c.Git.Write, "KARMA_GIT_WRITE")
	str(&c.Governance, "KARMA_GOVERNANCE")
	str(&c.Policies, "KARMA_POLICIES")
	if v := getenv("KARMA_NEPTUNE_IAM"); v != "" {
		c.NeptuneIAM = v == "true" || v == "1"
	}
	// "ssm" is accepted as a synonym of aws for the parameter store (the CLI's historic flag).
	if c.Params == "ssm" {
		c.Params = AWS
	}
	return c, c.Validate()
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	check := func(name, v string, allowed ...string) {
		for _, a := range allowed {
			if v == a {
				return
			}
		}
		errs = append(errs, fmt.Errorf("%s %q: want %s", name, v, strings.Join(allowed, " or ")))
	}
	check("params backend", c.Params, Embedded, AWS, "none")
	check("queue backend", c.Queue, Embedded, AWS)
	check("graph backend", c.Graph, Embedded, AWS)
	check("audit backend", c.Audit, Embedded, AWS)
	check("state backend", c.State, Embedded, AWS)
	if c.Git.Write != "" {
		check("git write", c.Git.Write, "branch", "change-branch", "none")
	}
	// Where an AWS store is (the Neptune endpoint, the queue prefix) is checked when the store is
	// opened (shared/app): a Lambda function has only the settings of the stores it uses.
	return errors.Join(errs...)
}

// Embedded reports whether any store uses the embedded state file.
func (c Config) UsesEmbedded() bool {
	return c.Params == Embedded || c.Queue == Embedded || c.Graph == Embedded || c.Audit == Embedded || c.State == Embedded
}

// Work is the workspace folder (WorkDir, default <state_dir>/work).
func (c Config) Work() string {
	if c.WorkDir != "" {
		return c.WorkDir
	}
	return filepath.Join(c.StateDir, "work")
}

// Cache is the cache folder (CacheDir, default the state directory).
func (c Config) Cache() string {
	if c.CacheDir != "" {
		return c.CacheDir
	}
	return c.StateDir
}
