package org.livemig.analyze;

import java.util.List;

/**
 * The layout of a VMSD body as the decoder needs it, built either from a vmdesc trailer (exact:
 * every listed field and subsection was written) or from a {@code -dump-vmstate} description
 * (a guess: fields may be version-gated or have existence tests, subsections are candidates).
 *
 * @param name         VMSD name
 * @param exact        true for vmdesc layouts: subsections are those written, in order
 * @param version      the VMSD's current version (dump layouts; nested structs are written with it)
 * @param fields       fields in declaration order
 * @param subsections  for exact layouts the subsections written; otherwise the candidates
 */
record VmsdLayout(String name, boolean exact, int version, List<FieldLayout> fields, List<VmsdLayout> subsections) {

    /**
     * This layout with its subsections as candidates rather than as what was written: for a later
     * copy of the same device (a COLO checkpoint's) whose subsections may differ from those the
     * vmdesc trailer saw.
     */
    VmsdLayout inexact() {
        List<FieldLayout> f = fields.stream().map(x -> x.struct() == null ? x
                : new FieldLayout(x.name(), x.index(), x.arrayLen(), x.type(), x.size(), x.struct().inexact(),
                        x.versionId(), x.existsTest())).toList();
        return new VmsdLayout(name, false, version, f, subsections.stream().map(VmsdLayout::inexact).toList());
    }

    /**
     * One field entry.
     *
     * @param name       output name (with a "[k]" suffix where the VMSD repeats a name)
     * @param index      array index of a single-element entry, or -1
     * @param arrayLen   element count of a compressed array entry, or -1
     * @param type       vmdesc type name ("struct" for nested VMSDs)
     * @param size       bytes per element (ignored for structs)
     * @param struct     nested layout for structs, else null
     * @param versionId  version that introduced the field (dump layouts; 0 for vmdesc)
     * @param existsTest true when a device test decides whether the field is written (dump layouts)
     */
    record FieldLayout(String name, int index, int arrayLen, String type, int size, VmsdLayout struct,
                       int versionId, boolean existsTest) {
    }
}
