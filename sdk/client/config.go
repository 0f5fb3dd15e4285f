package client

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/platoim/plato/sdk/protocol"
)

// Defaults for the zero fields of a Config.
const (
	DefaultIPConfURL    = "http://127.0.0.1:8080"
	DefaultPlatform     = "plato-go/1"
	DefaultDialTimeout  = 3 * time.Second
	DefaultLoginTimeout = 5 * time.Second
	DefaultAckTimeout   = 5 * time.Second
	// DefaultHeartbeat is used when a LoginAck carries a heartbeat interval of 0.
	DefaultHeartbeat = 30 * time.Second
	// DefaultReconnectMin and DefaultReconnectMax bound the pause before a reconnect attempt (see
	// Config.Reconnect): short enough that a blip costs a quarter second, long enough at the top that
	// a fleet waiting for a restarted gateway does not flatten it.
	DefaultReconnectMin = 250 * time.Millisecond
	DefaultReconnectMax = 30 * time.Second
	// MessageBuffer is the capacity of the channel returned by Messages.
	MessageBuffer = 1024
)

// deadIntervals is how many heartbeat intervals of silence from the server end the connection; the
// server uses the same factor for the device by default.
const deadIntervals = 3

// Config says where and as whom to connect. AppID, DID and a Credential are required (or, to skip
// ipconf, Endpoints and a Token).
type Config struct {
	// IPConfURL is ipconf's base URL, asked for endpoints (and a token) when Endpoints is empty.
	// Default DefaultIPConfURL. The request is bounded by DialTimeout.
	IPConfURL string
	// Credential is what your app's backend issued this device to prove who it is: a JWT it
	// signed, or whatever your connect callback accepts. It is sent to ipconf only, which answers
	// with a gateway token binding the app, the did and the uid the credential proves.
	Credential string
	// Endpoints, when set, are "host:port" gateway addresses dialled in order instead of asking ipconf;
	// Token must then be set too. A reconnecting client goes round them again and again.
	Endpoints []string
	// Token is the access token sent in Login and Resume. Empty means use the one ipconf returns,
	// which a reconnecting client renews from ipconf when it expires or a gateway refuses it; a Token
	// set here cannot be renewed, so its refusal ends the client.
	Token string
	// AppID identifies the business; required.
	AppID string
	// DID identifies the device; required. A newer login with the same DID replaces this connection.
	DID string
	// UID is the user signed in on the device; may be empty: the token says who it is, and a
	// Login naming another uid is refused (1103).
	UID string
	// Platform is free text sent in Login for the server's logs. Default DefaultPlatform.
	Platform string
	// DialTimeout bounds the TCP connect to each endpoint and the ipconf request. Default DefaultDialTimeout.
	DialTimeout time.Duration
	// LoginTimeout bounds the wait for LoginAck (or ResumeAck) on each endpoint. Default DefaultLoginTimeout.
	LoginTimeout time.Duration
	// AckTimeout bounds Send's wait for its UplinkAck, and any single frame write. Default DefaultAckTimeout.
	AckTimeout time.Duration
	// MaxBody is the largest frame body accepted from the server and sent by Send.
	// Default protocol.DefaultMaxBody; at most protocol.HardMaxBody.
	MaxBody int
	// OnDownlink, when set, receives every downlink in order on the reader goroutine, and the SDK sends
	// the DownlinkAck after it returns. It must not call Close (Close waits for the reader). When nil,
	// downlinks go to the channel returned by Messages.
	OnDownlink func(Message)
	// Logger receives the SDK's diagnostics. Default: a logger that discards everything.
	Logger *slog.Logger

	// Reconnect makes the client reconnect by itself when its connection ends for a reason that
	// another connection may not share (the package doc lists the rules): it resumes the connection
	// where it can, so Messages, Send and the sessions carry on. Default false: the client ends with
	// its first connection, and the application reconnects if it wants to.
	Reconnect bool
	// ReconnectMin is the pause bound before the first reconnect attempt; each further attempt doubles
	// it, up to ReconnectMax. The pause itself is random between 0 and that bound ("full jitter"), so
	// devices dropped together do not come back together. Default DefaultReconnectMin.
	ReconnectMin time.Duration
	// ReconnectMax caps the pause bound. A connection that lasted less than ReconnectMax does not reset
	// the doubling, so a gateway that accepts and drops at once is not hammered. Default
	// DefaultReconnectMax.
	ReconnectMax time.Duration
	// OnState, when set, is told how the connection goes: Connecting, Connected, Resumed, Disconnected
	// and, last, Closed. It is called in that order on one goroutine of the SDK, never two at once; it
	// must return quickly and must not call Close (Close waits for it). It may call Send, but
	// later states wait until it returns.
	OnState func(State)
}

func (c Config) withDefaults() Config {
	if c.IPConfURL == "" {
		c.IPConfURL = DefaultIPConfURL
	}
	if c.Platform == "" {
		c.Platform = DefaultPlatform
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.LoginTimeout == 0 {
		c.LoginTimeout = DefaultLoginTimeout
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.MaxBody == 0 {
		c.MaxBody = protocol.DefaultMaxBody
	}
	if c.ReconnectMin == 0 {
		c.ReconnectMin = DefaultReconnectMin
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = max(DefaultReconnectMax, c.ReconnectMin)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.AppID == "" {
		errs = append(errs, errors.New("AppID is required"))
	}
	if c.DID == "" {
		errs = append(errs, errors.New("DID is required"))
	}
	if len(c.Endpoints) > 0 && c.Token == "" {
		errs = append(errs, errors.New("Token is required when Endpoints is set"))
	}
	if len(c.Endpoints) == 0 && c.Credential == "" {
		errs = append(errs, errors.New("Credential is required to ask ipconf (the credential your app's backend issued the device)"))
	}
	// The codec would silently cut a longer string, and a cut token only fails later and obscurely.
	for name, v := range map[string]string{"AppID": c.AppID, "DID": c.DID, "UID": c.UID, "Token": c.Token, "Platform": c.Platform} {
		if len(v) > protocol.MaxString {
			errs = append(errs, fmt.Errorf("%s is %d bytes, the maximum is %d", name, len(v), protocol.MaxString))
		}
	}
	if c.DialTimeout < 0 || c.LoginTimeout < 0 || c.AckTimeout < 0 {
		errs = append(errs, errors.New("timeouts must not be negative"))
	}
	if c.ReconnectMin < 0 || c.ReconnectMax < c.ReconnectMin {
		errs = append(errs, fmt.Errorf("ReconnectMin %s and ReconnectMax %s must satisfy 0 <= min <= max", c.ReconnectMin, c.ReconnectMax))
	}
	if c.MaxBody < 0 || c.MaxBody > protocol.HardMaxBody {
		errs = append(errs, fmt.Errorf("MaxBody %d is outside 0..%d", c.MaxBody, protocol.HardMaxBody))
	}
	return errors.Join(errs...)
}
