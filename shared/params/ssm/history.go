package ssm

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/usekarma/karma/shared/params"
)

var _ params.Historian = (*Store)(nil)

// History returns every version of a parameter, oldest first, with the LastModifiedUser and
// Description SSM recorded for each (GetParameterHistory, paginated, decrypted).
func (s *Store) History(ctx context.Context, name string) ([]params.Parameter, error) {
	pages := ssm.NewGetParameterHistoryPaginator(s.client, &ssm.GetParameterHistoryInput{
		Name: aws.String(name), WithDecryption: aws.Bool(true), MaxResults: aws.Int32(50),
	})
	var out []params.Parameter
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			var nf *types.ParameterNotFound
			if errors.As(err, &nf) {
				return nil, fmt.Errorf("ssm: %s: %w", name, params.ErrNotFound)
			}
			return nil, fmt.Errorf("ssm: history of %s: %w", name, err)
		}
		for _, h := range page.Parameters {
			p := params.Parameter{Name: aws.ToString(h.Name), Value: aws.ToString(h.Value), Type: string(h.Type),
				Version: h.Version, LastModifiedUser: aws.ToString(h.LastModifiedUser), Description: aws.ToString(h.Description)}
			if h.LastModifiedDate != nil {
				p.LastModified = h.LastModifiedDate.UTC()
			}
			out = append(out, p)
		}
	}
	return out, nil
}
