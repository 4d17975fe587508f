// Errors raised by the native side. The addon turns each kind into the matching JS error
// (TypeError, RangeError, DskCudaError, Error); the message always names the op and the argument.
#pragma once
#include <stdexcept>
#include <string>

namespace dsk {

enum class ErrorKind { Type, Range, Cuda, State };

struct Error : std::runtime_error {
  ErrorKind kind;
  std::string op;         // the op or entry point that failed
  std::string cuda_name;  // for Cuda: the CUDA error's name, e.g. cudaErrorIllegalAddress
  Error(ErrorKind k, std::string op_, const std::string& msg, std::string cuda = {})
      : std::runtime_error(op_.empty() ? msg : op_ + ": " + msg), kind(k), op(std::move(op_)), cuda_name(std::move(cuda)) {}
};

[[noreturn]] inline void throw_type(const std::string& op, const std::string& msg) { throw Error(ErrorKind::Type, op, msg); }
[[noreturn]] inline void throw_range(const std::string& op, const std::string& msg) { throw Error(ErrorKind::Range, op, msg); }
[[noreturn]] inline void throw_state(const std::string& op, const std::string& msg) { throw Error(ErrorKind::State, op, msg); }

}  // namespace dsk
