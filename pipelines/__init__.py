"""nerwheel.pipelines"""
