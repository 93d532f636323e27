package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/config"
)

// The webhook function reads the config repository and its folder from the configuration, as
// every function does: with them named in the KARMA_CONFIG file (git.url, git.subdir) and not in
// the environment, the function read neither, so a push of another repository that a wildcard
// secret verified was queued as the config repository's, and a push to the folder was ignored.
func TestWebhookModeReadsTheRepositoryFromTheConfigFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "karma.config.json")
	if err := os.WriteFile(file, []byte(`{"git": {"url": "https://github.com/acme/config.git", "subdir": "infra"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"KARMA_STAGE": "webhook", "KARMA_EVENT_BUS": "karma", "KARMA_CONFIG": file,
		"KARMA_BACKEND": config.Embedded, "KARMA_HOME": t.TempDir(), "KARMA_WEBHOOK_SECRETS": `{"github:*": "` + hookSecret + `"}`}
	h, err := lambdaHandler(t.Context(), lambdaApp(t, vars, awsConfig("http://127.0.0.1:1")), env(vars))
	if err != nil {
		t.Fatal(err)
	}
	handle := h.(apiGatewayHandler)
	before, after := strings.Repeat("a", 40), strings.Repeat("b", 40)
	other := []byte(strings.ReplaceAll(string(pushBody("refs/heads/main", before, after, true, "infra/iac/prod/vpc/core/config.json")), "acme/config", "acme/other"))
	resp, err := handle(t.Context(), hookEvent("push", "o1", other, hookSign(other), false))
	if err != nil || resp.StatusCode != 200 || !strings.Contains(resp.Body, "this Karma deploys acme/config") {
		t.Errorf("a push of acme/other: %d %s, %v; want 200, ignored: another repository", resp.StatusCode, resp.Body, err)
	}
	ours := pushBody("refs/heads/main", before, after, true, "infra/iac/prod/vpc/core/config.json")
	resp, err = handle(t.Context(), hookEvent("push", "o2", ours, hookSign(ours), false))
	if err != nil || resp.StatusCode != 202 || !strings.Contains(resp.Body, `"status":"queued"`) {
		t.Errorf("a push of acme/config changing infra/iac/prod/vpc/core/config.json: %d %s, %v; want 202 queued", resp.StatusCode, resp.Body, err)
	}
}
