"""A real gRPC server and client (grpcio) for the mesh tests.

No generated code: the methods carry raw bytes, which is all the proxy sees.

    echo.py serve ADDR NAME          # serves weft.test.Echo until killed
    echo.py unary TARGET MSG         # prints "<status> <reply>"
    echo.py stream TARGET MSG N      # prints "<status> <reply1>|<reply2>|..."

TARGET is host:port of the client sidecar's outbound listener for the
service; the authority is given with --authority so the sidecar can route.
"""

import sys
import time
from concurrent import futures

import grpc

SERVICE = "weft.test.Echo"


def serve(addr, name):
    def unary(request, context):
        text = request.decode()
        if text.startswith("fail:"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "asked to fail")
        return f"{name}:{text}".encode()

    def stream(request, context):
        text = request.decode()
        count = int(text.split(":")[-1]) if ":" in text else 3
        for i in range(count):
            yield f"{name}:{i}".encode()

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Stream": grpc.unary_stream_rpc_method_handler(stream),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(addr)
    server.start()
    print("serving", addr, flush=True)
    server.wait_for_termination()


def client(target, authority):
    options = [("grpc.default_authority", authority)] if authority else []
    return grpc.insecure_channel(target, options=options)


def main(argv):
    authority = None
    if "--authority" in argv:
        i = argv.index("--authority")
        authority = argv[i + 1]
        del argv[i : i + 2]
    cmd = argv[1]
    if cmd == "serve":
        serve(argv[2], argv[3])
        return 0
    with client(argv[2], authority) as channel:
        try:
            if cmd == "unary":
                call = channel.unary_unary(f"/{SERVICE}/Unary")
                reply = call(argv[3].encode(), timeout=10)
                print("OK", reply.decode())
            elif cmd == "stream":
                call = channel.unary_stream(f"/{SERVICE}/Stream")
                replies = [r.decode() for r in call(f"{argv[3]}:{argv[4]}".encode(), timeout=10)]
                print("OK", "|".join(replies))
        except grpc.RpcError as e:
            print(e.code().name, e.details())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
