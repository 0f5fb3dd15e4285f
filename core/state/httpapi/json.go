package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/platoim/plato/sdk/business/rpc/plato/api"
)

// The JSON bodies of the routes, field for field the requests and responses of idl/plato.thrift
// without the caller (the app is in the path, the key in the Authorization header). payload is
// standard base64, as encoding/json writes []byte; enums are strings (openapi.json).

type pushBody struct {
	Dids      []string `json:"dids"`
	Uids      []string `json:"uids"`
	Session   string   `json:"session"`
	Payload   []byte   `json:"payload"`
	QoS       string   `json:"qos"`
	WaitAck   bool     `json:"wait_ack"`
	TimeoutMs int32    `json:"timeout_ms"`
}

type pushResult struct {
	MsgID          int64        `json:"msg_id"`
	Targets        []pushTarget `json:"targets"`
	Route          string       `json:"route"`
	QoS            string       `json:"qos"`
	SessionMembers int32        `json:"session_members"`
}

type pushTarget struct {
	Did     string `json:"did"`
	Uid     string `json:"uid"`
	ConnID  int64  `json:"conn_id"`
	Status  string `json:"status"`
	Seq     int64  `json:"seq"`
	Code    int32  `json:"code"`
	Message string `json:"message"`
}

// batchBody keeps each message raw, so one that does not decode is refused alone.
type batchBody struct {
	Messages []json.RawMessage `json:"messages"`
}

type batchResult struct {
	Results []batchItem `json:"results"`
}

// batchItem is one message's outcome: exactly one of Push and Error.
type batchItem struct {
	Push  *pushResult `json:"push,omitempty"`
	Error *apiError   `json:"error,omitempty"`
}

type bindBody struct {
	Session string   `json:"session"`
	Dids    []string `json:"dids"`
	Replace bool     `json:"replace"`
}

type bindResult struct {
	Offline []string `json:"offline"`
	Members int32    `json:"members"`
}

type unbindBody struct {
	Session string   `json:"session"`
	Dids    []string `json:"dids"`
	All     bool     `json:"all"`
}

type unbindResult struct {
	Members int32 `json:"members"`
}

type kickBody struct {
	Dids    []string `json:"dids"`
	Message string   `json:"message"`
}

type kickResult struct {
	Kicked []string `json:"kicked"`
}

type onlineBody struct {
	Session string   `json:"session"`
	Dids    []string `json:"dids"`
}

type onlineResult struct {
	Devices []device `json:"devices"`
}

type device struct {
	Did        string   `json:"did"`
	Uid        string   `json:"uid"`
	GatewayID  string   `json:"gateway_id"`
	ConnID     int64    `json:"conn_id"`
	RemoteAddr string   `json:"remote_addr"`
	Sessions   []string `json:"sessions"`
}

// apiError is the body of every refusal, and a refused message of a batch.
type apiError struct {
	Code    int32  `json:"code"`
	Message string `json:"message"`
}

type errorBody struct {
	Error apiError `json:"error"`
}

// decode reads one JSON object into v, strictly: a field the route does not know is refused (a
// misspelt "did" would otherwise push to nobody), and so is anything after the object.
func decode(data []byte, v any) error {
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return errors.New("the body must be a JSON object")
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON object")
	}
	return nil
}

var qosByName = map[string]api.QoS{
	"": api.QoS_DEFAULT, "default": api.QoS_DEFAULT,
	"at_most_once": api.QoS_AT_MOST_ONCE, "at_least_once": api.QoS_AT_LEAST_ONCE,
}

func qosName(q api.QoS) string { return strings.ToLower(q.String()) }

func (b *pushBody) request(c *api.Caller) (*api.PushRequest, error) {
	qos, ok := qosByName[b.QoS]
	if !ok {
		return nil, fmt.Errorf("qos %q is not one of default, at_most_once, at_least_once", b.QoS)
	}
	return &api.PushRequest{
		Caller: c, Dids: b.Dids, Uids: b.Uids, Session: b.Session, Payload: b.Payload,
		Qos: qos, WaitAck: b.WaitAck, TimeoutMs: b.TimeoutMs,
	}, nil
}

func pushJSON(r *api.PushResponse) *pushResult {
	out := &pushResult{MsgID: r.MsgId, Targets: make([]pushTarget, len(r.Targets)), Route: r.Route.String(), QoS: qosName(r.Qos), SessionMembers: r.SessionMembers}
	for i, t := range r.Targets {
		out.Targets[i] = pushTarget{Did: t.Did, Uid: t.Uid, ConnID: t.ConnId, Status: t.Status.String(), Seq: t.Seq, Code: t.Code, Message: t.Message}
	}
	return out
}

func onlineJSON(r *api.OnlineResponse) *onlineResult {
	out := &onlineResult{Devices: make([]device, len(r.Devices))}
	for i, d := range r.Devices {
		out.Devices[i] = device{Did: d.Did, Uid: d.Uid, GatewayID: d.GatewayId, ConnID: d.ConnId, RemoteAddr: d.RemoteAddr, Sessions: nonNil(d.Sessions)}
	}
	return out
}

// nonNil makes an empty list encode as [] rather than null, so clients need not test for both.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
