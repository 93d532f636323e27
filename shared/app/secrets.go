package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// gitTokenFile fetches the config repository's access token from the Secrets Manager secret
// Git.TokenSecret names (KARMA_GIT_TOKEN_SECRET; terraform/ grants the functions that read the
// repository GetSecretValue on it) and writes it, readable by this process alone, under dir:
// the token file gitrepo reads. The token is never logged; errors name the secret, never its
// value.
func gitTokenFile(ctx context.Context, cfg aws.Config, secretARN, dir string) (string, error) {
	out, err := secretsmanager.NewFromConfig(cfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(secretARN)})
	if err != nil {
		return "", fmt.Errorf("KARMA_GIT_TOKEN_SECRET %s: %w", secretARN, err)
	}
	token := strings.TrimSpace(aws.ToString(out.SecretString))
	if token == "" {
		return "", fmt.Errorf("KARMA_GIT_TOKEN_SECRET %s: the secret holds no string (store the token as the secret's text)", secretARN)
	}
	return writeTokenFile(dir, token)
}

// writeTokenFile writes token to dir/git-token readable by this process alone, whatever a file
// already there allowed: os.WriteFile keeps an existing file's permissions, so a token file
// left 0644 (by hand, by an older release, by a restored cache) would have stayed world-readable.
// The token goes to a fresh 0600 file renamed over the old one, so a reader never sees it half
// written or readable by others.
func writeTokenFile(dir, token string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "git-token")
	f, err := os.CreateTemp(dir, ".git-token-*")
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		os.Remove(tmp)
		return "", err
	}
	if _, err := f.WriteString(token + "\n"); err != nil {
		f.Close()
		os.Remove(tmp)
		return "", err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return path, nil
}
