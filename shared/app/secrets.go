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
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "git-token")
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return "", err
	}
	return path, nil
}
