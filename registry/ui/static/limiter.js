// Runs at most `size` tasks at once, so lazy loading of many rows does not flood the server.

export class Limiter {
  constructor(size) {
    this.size = size;
    this.running = 0;
    this.queue = [];
  }

  /** Resolves with fn()'s result once a slot is free. */
  run(fn) {
    return new Promise((resolve, reject) => {
      this.queue.push({ fn, resolve, reject });
      this.next();
    });
  }

  next() {
    while (this.running < this.size && this.queue.length > 0) {
      const { fn, resolve, reject } = this.queue.shift();
      this.running += 1;
      Promise.resolve()
        .then(fn)
        .then(resolve, reject)
        .finally(() => {
          this.running -= 1;
          this.next();
        });
    }
  }
}
