package client

import (
	"errors"
	"testing"

	"github.com/platoim/plato/sdk/protocol"
)

func TestClassify(t *testing.T) {
	pe := func(c protocol.Code) error { return &protocol.Error{Code: c} }
	for _, tt := range []struct {
		err  error
		want verdict
	}{
		{errors.New("reading: EOF"), retry},
		{pe(protocol.CodeReplaced), final},
		{pe(protocol.CodeKicked), final},
		{pe(protocol.CodeBadMagic), final},
		{pe(protocol.CodeMalformed), final},
		{&handshakeFault{pe(protocol.CodeBadMagic)}, retry}, // not a gateway on that port: try the next
		{pe(protocol.CodeBadDirection), final},
		{pe(protocol.CodeTokenExpired), renew},
		{pe(protocol.CodeUnknownApp), renew},
		{pe(protocol.CodeHeartbeatTimeout), retry},
		{pe(protocol.CodeShuttingDown), retry},
		{pe(protocol.CodeSlowConsumer), retry},
		{pe(protocol.CodeLoginTimeout), retry},
		{pe(protocol.CodeMigrated), retry},
		{pe(protocol.CodeStateLost), retry},
		{pe(protocol.CodeConnectionLost), retry},
		{pe(protocol.CodeOverloaded), retry},
		{pe(protocol.CodeInternal), retry},
		{pe(protocol.CodeRateLimited), retry},
		{pe(2042), retry},
	} {
		if got := classify(tt.err); got != tt.want {
			t.Errorf("classify(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
	for _, tt := range []struct {
		err  error
		want verdict
	}{
		{errors.New("connection refused"), retry},
		{pe(protocol.CodeNoGateway), retry},
		{pe(protocol.CodeBusinessTimeout), retry},
		{pe(protocol.CodeTokenExpired), final},
		{pe(protocol.CodeInvalidArgument), final},
		{pe(2001), final},
	} {
		if got := classifyIPConf(tt.err); got != tt.want {
			t.Errorf("classifyIPConf(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestResumable(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{errors.New("reading: EOF"), true},
		{&protocol.Error{Code: protocol.CodeShuttingDown}, true},
		{&protocol.Error{Code: protocol.CodeMigrated}, true},
		{&protocol.Error{Code: protocol.CodeRateLimited}, false}, // the server keeps nothing: Login at once
		{&protocol.Error{Code: 2001}, false},
	} {
		if got := resumable(tt.err); got != tt.want {
			t.Errorf("resumable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
