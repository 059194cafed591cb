/** The README's embedding examples, as an application module using livemig's exported API. */
module org.livemig.examples {
    requires org.livemig.core;
}
