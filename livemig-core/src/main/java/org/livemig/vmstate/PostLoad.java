package org.livemig.vmstate;

/** A device's post-load hook: it may refuse the state it was given. Called with the BQL held unless its description says it needs none ({@link LoadHook}). */
@FunctionalInterface
public interface PostLoad<T> {
    void postLoad(T obj, int versionId) throws VmStateException;
}
