package terraform

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
)

// Modules gives the folder that holds one Terraform module per component type, as it is in a
// commit of the config repository: plan and apply deploy the modules of the commit a change set
// was built from, never those of a working tree.
type Modules interface {
	ModulesDir(ctx context.Context, commit string) (string, error)
}

// CommitModules is an optional interface of Modules: whether a folder ModulesDir returned is a
// commit's own modules folder (materialized from its tree), which the workspace's module calls
// must then stay in (Workspace.Confine).
type CommitModules interface {
	FromCommit(dir string) bool
}

// StaticModules is one modules folder whatever the commit: tests, and a modules folder that
// lies outside the config repository (not versioned with it).
type StaticModules string

// ModulesDir returns the folder.
func (m StaticModules) ModulesDir(context.Context, string) (string, error) { return string(m), nil }

// Workspaces says where component workspaces live and where each commit's modules are.
type Workspaces struct {
	WorkDir string  // e.g. .karma/work; a component's workspace is WorkDir/<env>/<type>/<nickname>
	Modules Modules // the modules folder of a commit
	Prefix  string  // Parameter Store prefix
	// Spent, given to every workspace (Workspace.Spent), says when a deployment will never
	// apply the plans made for it: they are removed (prune.go). nil: only stale plans are.
	Spent SpentFunc
}

// For builds the workspace of a component id with its config and the module of its type at
// commit.
func (ws Workspaces) For(ctx context.Context, component, commit string, config json.RawMessage) (Workspace, error) {
	parts := strings.SplitN(component, "/", 3)
	if len(parts) != 3 {
		return Workspace{}, fmt.Errorf("bad component id %q", component)
	}
	root, err := filepath.Abs(filepath.Join(ws.WorkDir, parts[0], parts[1], parts[2]))
	if err != nil {
		return Workspace{}, err
	}
	if ws.Modules == nil {
		return Workspace{}, fmt.Errorf("workspace %s: no modules configured", component)
	}
	modules, err := ws.Modules.ModulesDir(ctx, commit)
	if err != nil {
		return Workspace{}, err
	}
	mod, err := filepath.Abs(filepath.Join(modules, parts[1]))
	if err != nil {
		return Workspace{}, err
	}
	out := Workspace{Root: root, ModuleDir: mod, Env: parts[0], Type: parts[1], Nickname: parts[2], Prefix: ws.Prefix, Config: config,
		Spent: ws.Spent}
	if cm, ok := ws.Modules.(CommitModules); ok && cm.FromCommit(modules) {
		if out.Confine, err = filepath.Abs(modules); err != nil {
			return Workspace{}, err
		}
	}
	return out, nil
}
