"""The decision core: plain functions over arrays, with no gRPC, protobuf or metrics in them."""
