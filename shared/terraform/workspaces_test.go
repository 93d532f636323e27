package terraform_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"github.com/usekarma/karma/shared/terraform"
)

type commitModules map[string]string

func (m commitModules) ModulesDir(_ context.Context, commit string) (string, error) {
	if d, ok := m[commit]; ok {
		return d, nil
	}
	return "", errors.New("unknown commit " + commit)
}

func TestWorkspacesFor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ws := terraform.Workspaces{WorkDir: "/w", Modules: commitModules{"a": "/m/a", "b": "/m/b"}, Prefix: "/iac"}
	got, err := ws.For(ctx, "prod/ecs-service/api", "b", json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if got.Root != filepath.FromSlash("/w/prod/ecs-service/api") || got.ModuleDir != filepath.FromSlash("/m/b/ecs-service") ||
		got.Env != "prod" || got.Type != "ecs-service" || got.Nickname != "api" || got.Prefix != "/iac" || got.ID() != "prod/ecs-service/api" {
		t.Errorf("workspace %+v", got)
	}
	if _, err := ws.For(ctx, "prod/ecs-service/api", "c", nil); err == nil {
		t.Error("a commit whose modules cannot be had was accepted")
	}
	for _, bad := range []string{"prod/vpc", "vpc", ""} {
		if _, err := ws.For(ctx, bad, "a", nil); err == nil {
			t.Errorf("For(%q) accepted", bad)
		}
	}
}
