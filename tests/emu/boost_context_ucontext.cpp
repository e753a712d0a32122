// Boost.Context's ucontext fibers, for the sanitizer build of the emulator tests only.
// Only Boost.Context's ucontext implementation tells AddressSanitizer about each stack
// switch (BOOST_USE_ASAN); Debian's libboost_context is built for the fcontext one and
// lacks the ucontext variant's one out-of-line piece, the per-thread current record.
// This is that piece, as Boost 1.74 defines it in libs/context/src/fiber.cpp
// (Copyright Oliver Kowalke 2017, Boost Software License 1.0).
#include <boost/context/fiber.hpp>

#if !defined(BOOST_USE_UCONTEXT)
#error "only for BOOST_USE_UCONTEXT builds"
#endif

namespace boost::context::detail {

// Zero-initialised; set by the first initializer of each thread.
thread_local fiber_activation_record* fib_current_rec;
thread_local static std::size_t counter;

// A Schwarz counter: the thread's main-context record lives while any initializer does.
fiber_activation_record_initializer::fiber_activation_record_initializer() noexcept {
  if (0 == counter++) fib_current_rec = new fiber_activation_record();
}

fiber_activation_record_initializer::~fiber_activation_record_initializer() {
  if (0 == --counter) {
    BOOST_ASSERT(fib_current_rec->is_main_context());
    delete fib_current_rec;
  }
}

fiber_activation_record*& fiber_activation_record::current() noexcept {
  thread_local static fiber_activation_record_initializer initializer;
  return fib_current_rec;
}

}  // namespace boost::context::detail
