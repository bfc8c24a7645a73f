// The Echo service (tests/proto/echo.proto) for browser code, without code generation: the
// messages are declared from their field lists (Connect's protobuf runtime encodes them for
// both clients; fields are set by their camelCase names), with Connect's service description
// and the official gRPC-Web client's method descriptors. Used by the test page and the demo.

import { MethodDescriptor } from "grpc-web";
import { proto3, MethodKind } from "@bufbuild/protobuf";

export const EchoRequest = proto3.makeMessageType("weft.test.EchoRequest", [
  { no: 1, name: "message", kind: "scalar", T: 9 },
  { no: 2, name: "delay_ms", kind: "scalar", T: 13 },
  { no: 3, name: "fail_code", kind: "scalar", T: 5 },
  { no: 4, name: "fail_message", kind: "scalar", T: 9 },
  { no: 5, name: "count", kind: "scalar", T: 13 },
  { no: 6, name: "response_size", kind: "scalar", T: 13 },
  { no: 7, name: "interval_ms", kind: "scalar", T: 13 },
]);

export const EchoReply = proto3.makeMessageType("weft.test.EchoReply", [
  { no: 1, name: "message", kind: "scalar", T: 9 },
  { no: 2, name: "instance", kind: "scalar", T: 9 },
  { no: 3, name: "received", kind: "scalar", T: 13 },
  { no: 4, name: "padding", kind: "scalar", T: 12 },
]);

// Connect's service description.
export const Echo = {
  typeName: "weft.test.Echo",
  methods: {
    unary: { name: "Unary", I: EchoRequest, O: EchoReply, kind: MethodKind.Unary },
    serverStream: {
      name: "ServerStream",
      I: EchoRequest,
      O: EchoReply,
      kind: MethodKind.ServerStreaming,
    },
  },
};

// The official client's method descriptors.
const descriptor = (method, type) =>
  new MethodDescriptor(
    `/weft.test.Echo/${method}`,
    type,
    EchoRequest,
    EchoReply,
    (request) => request.toBinary(),
    (bytes) => EchoReply.fromBinary(bytes),
  );
export const UNARY = descriptor("Unary", "unary");
export const SERVER_STREAM = descriptor("ServerStream", "server_streaming");
