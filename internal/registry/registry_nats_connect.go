package registry

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Connection defaults used by Connect.
const (
	// ConnectTimeout bounds the initial dial when ctx has no earlier deadline.
	ConnectTimeout = 5 * time.Second
	// ReconnectWait is the pause between reconnect attempts (nats adds jitter).
	ReconnectWait = time.Second
	// PingInterval is how often the client checks a quiet connection, so a dead server is noticed
	// within a few intervals rather than the client default of minutes.
	PingInterval = 10 * time.Second
)

// Connect dials the NATS server(s) at url (comma-separated for a cluster) as name, and returns the
// connection with its JetStream context. The first dial must succeed within ConnectTimeout (or
// ctx's deadline, if sooner) and the server must have JetStream (a cluster still electing its
// JetStream leader is waited for, up to bucketReadyTimeout); after that the connection
// reconnects forever, logging disconnects and reconnects to logger (nil: slog.Default()). The
// caller closes the connection.
func Connect(ctx context.Context, url, name string, logger *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "nats-client", "name", name)
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("connecting to nats: %w", err)
	}
	timeout := ConnectTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.Timeout(timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(ReconnectWait),
		nats.PingInterval(PingInterval),
		// No reconnect buffer: a publish while NATS is away (a session broadcast) fails at once,
		// and its push is refused with a code the business retries, rather than being held for an
		// unknown time and delivered late, or dropped when the buffer fills.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			logger.Info("nats reconnected", "url", c.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(*nats.Conn) {
			logger.Debug("nats connection closed")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				logger.Error("nats async error", "subject", sub.Subject, "err", err)
				return
			}
			logger.Error("nats async error", "err", err)
		}),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to nats at %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("creating jetstream context: %w", err)
	}
	// Fail now, with a clear message, rather than on the first registry call; but wait for a
	// cluster that is still electing its JetStream leader (every node was just started).
	if err := waitJetStream(ctx, js, timeout); err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("checking jetstream at %s: %w", url, err)
	}
	logger.Debug("nats connected", "url", nc.ConnectedUrlRedacted())
	return nc, js, nil
}

// waitJetStream asks for the account's JetStream information, each try bounded by timeout, until
// it answers or fails for good; a JetStream not ready yet is waited for up to bucketReadyTimeout
// (or ctx's deadline).
func waitJetStream(ctx context.Context, js jetstream.JetStream, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, bucketReadyTimeout)
	defer cancel()
	for {
		ictx, icancel := context.WithTimeout(ctx, timeout)
		_, err := js.AccountInfo(ictx)
		icancel()
		if err == nil || !transient(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(checkRetry):
		}
	}
}
