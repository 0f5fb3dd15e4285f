package registry

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestTransientErrors: what JetStream answers while it is not ready is waited out (EnsureBucket,
// the first registration); a refusal of the request itself is not.
func TestTransientErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("putting node gateway.gw-a: %w", jetstream.ErrNoStreamResponse), true},
		{fmt.Errorf("putting: %w", nats.ErrNoResponders), true},
		{context.DeadlineExceeded, true},
		{&jetstream.APIError{Code: 503, ErrorCode: 10008}, true},
		{&jetstream.APIError{Code: 400, ErrorCode: 10005}, true},
		{&jetstream.APIError{Code: 400, ErrorCode: 10058}, false},
		{errors.New("invalid key"), false},
		{ErrUnavailable, false},
	} {
		if got := transient(tc.err); got != tc.want {
			t.Errorf("transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
